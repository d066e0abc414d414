"""Students built from a teacher by keeping ``k`` of its layers (DistilBERT-style initialisation).

The student is a deep copy of the teacher (embeddings, head and the chosen layers) whose config says ``k`` layers,
so ``save_pretrained`` writes a checkpoint that ``AutoModel*.from_pretrained`` reloads without DynaKD.
"""

from __future__ import annotations

import copy
import operator

import torch
from torch import nn

from .distributed import note
from .errors import DynaKDError, first_line
from .notes import say

# config entries that hold one value per layer, read by layer index (found in transformers' models): shrunk with the
# layers, since a model checks their length on loading or builds each layer from its entry (SmolLM3's and Llama 4's
# no_rope_layers: a kept layer without rotary embeddings reloaded with them). Named, not guessed from their length:
# DeBERTa's pos_att_type ["c2p", "p2c"] is as long as a 2-layer teacher is deep.
PER_LAYER_CONFIG = (
    "layer_types", "attention_window", "no_rope_layers", "layers_block_type", "mlp_layer_types", "attn_layers",
    "indexer_types", "layer_rope_theta", "sliding_windows", "intermediate_size", "activation_sparsity_pattern",
    "num_attention_heads_per_layer", "num_key_value_heads_per_layer", "num_experts", "moe_topk", "swiglu_limits",
    "swiglu_limits_shared", "expert_swiglu_limit_list", "share_expert_swiglu_limit_list",
)
# config entries that list the ids of some layers (Llama 4's MoE layers, Qwen-MoE's dense ones): renumbered to the
# kept layers' positions
LAYER_ID_CONFIG = ("moe_layers", "mlp_only_layers", "full_attn_idxs", "rope_scaling_layers")
# config entries that count groups of layers, each group with weights of its own: one group per layer (ALBERT with
# num_hidden_groups == num_hidden_layers) counts the kept layers; fewer groups share weights among layers
LAYER_GROUPS_CONFIG = ("num_hidden_groups",)


def default_layer_ids(n_teacher: int, k: int) -> list[int]:
    """``k`` evenly spaced 0-based layer ids from first to last (12 -> 6 gives DistilBERT's 0 2 4 7 9 11)."""
    if k == 1:
        return [n_teacher - 1]
    return [int(i * (n_teacher - 1) / (k - 1) + 0.5) for i in range(k)]


def find_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The module list holding the transformer blocks: ``(parent, attribute, list)``."""
    n = model.config.num_hidden_layers
    found = []
    for name, module in model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n:
                found.append((attr in ("layer", "layers", "h", "block"), name, module, attr, child))
    if not found:
        raise DynaKDError(f"cannot find the {n} transformer layers of {type(model).__name__} to build a student from")
    found.sort(key=lambda f: (not f[0], f[1].count(".")))
    _, _, parent, attr, layers = found[0]
    parallel = [a for _, name, module, a, _ in found if module is parent]
    if len(parallel) > 1:  # XLM's attentions, layer_norm1, ffns, layer_norm2: a layer is one entry of each
        raise DynaKDError(f"{type(model).__name__} keeps each layer's parts in {len(parallel)} parallel lists "
                          f"({', '.join(parallel)}), not one list of blocks: DynaKD cannot build a student from its "
                          "layers; give a smaller model of the same family with --student")
    return parent, attr, layers


# How the command's flags name a student: a checkpoint, its layer count, its layer ids (a sweep names its own keys)
STUDENT_FLAGS = ("--student", "--student-layers", "--student-layer-ids")


def check_layers_apart(config, what: str, student: str = STUDENT_FLAGS[0]) -> None:
    """Refuse a model whose layers share weights (ALBERT's default, one group of weights for all its layers): it has
    no layer of its own to keep, and only the number of times the shared ones apply could shrink. ``student`` names
    the way to give a student checkpoint: the command's flag, or a sweep file's key."""
    give = f"with {student}" if student.startswith("-") else f"as {student}"
    n = config.num_hidden_layers
    try:  # (Funnel's depth is the sum of its block_sizes, which pool between blocks: its config refuses a new depth)
        copy.copy(config).num_hidden_layers = n
    except (AttributeError, NotImplementedError):
        raise DynaKDError(f"{what} takes its depth from other settings of its config ({type(config).__name__} cannot "
                          f"set num_hidden_layers), so DynaKD cannot keep some of its layers: give a smaller model of "
                          f"the same family {give}") from None
    for key in LAYER_GROUPS_CONFIG:
        groups = getattr(config, key, None)
        if isinstance(groups, int) and groups != n:
            sets = "one set" if groups == 1 else f"{groups} sets"
            raise DynaKDError(f"{what} shares {sets} of weights among its {n} layers ({key} {groups}), so no layer can "
                              "be kept alone: for a shallower student of the same weights, save a copy with a "
                              f"smaller num_hidden_layers in its config.json and give it {give}, or give another "
                              f"smaller model {give}")


def resolve_layer_ids(n: int, k: int | None = None, layer_ids: list[int] | None = None, *,
                      names: tuple[str, str] = STUDENT_FLAGS[1:], say: bool = False) -> list[int]:
    """The 0-based teacher layers a student keeps, checked against the teacher's depth ``n``. ``names`` spell
    ``k`` and ``layer_ids`` in messages: the command's flags, or a sweep file's keys. ``say``: note layers out of
    order (once, where the student is built: ``build_student``)."""
    k_name, ids_name = names
    if layer_ids is None:
        if k is None:
            raise DynaKDError(f"give --student, {k_name} or {ids_name}")
        check_count(k_name, k)  # (the config checks its own; build_student's callers not)
        if k > n:
            raise DynaKDError(f"{k_name} {k} asks for more layers than the teacher's {n}")
        return _noted_whole(default_layer_ids(n, k), n, k_name, say)
    if k is not None and len(layer_ids) != k:
        raise DynaKDError(f"{ids_name} lists {len(layer_ids)} layers but {k_name} is {k}")
    if not layer_ids or len(set(layer_ids)) != len(layer_ids) or not all(_whole(i) and 0 <= i < n for i in layer_ids):
        raise DynaKDError(f"{ids_name} must be distinct 0-based ids in 0..{n - 1}, got {layer_ids}")
    ids = [operator.index(i) for i in layer_ids]
    if say and ids != sorted(ids):  # (stacked as listed without a word: a mistake, or meant)
        note(f"{ids_name} lists the teacher's layers out of order ({', '.join(map(str, ids))}): the student "
             f"stacks them so, layer {ids[0]} first (in the teacher's order: {', '.join(map(str, sorted(ids)))})")
    return _noted_whole(ids, n, ids_name, say)


def _noted_whole(ids: list[int], n: int, name: str, say: bool) -> list[int]:
    """``ids``, said where they keep every layer of the teacher: a student as deep as it, and as large (a README
    example's 6 layers of a 12-layer BERT, given a 6-layer MiniLM), which distils to no smaller model."""
    if say and len(ids) == n:
        note(f"{name} keeps all {n} of the teacher's layers: the student is as large as the teacher; fewer layers "
             "make a smaller one")
    return ids


def check_count(name: str, value) -> None:
    """Refuse a count of layers (or a width) that is not a whole number >= 1 (it failed inside torch)."""
    if not _whole(value) or value < 1:
        raise DynaKDError(f"{name} must be a whole number >= 1, got {value!r}")


def _whole(value) -> bool:
    """An integer of any kind (numpy's too), not a bool or a float."""
    try:
        operator.index(value)
    except TypeError:
        return False
    return not isinstance(value, bool)


def build_student(teacher: nn.Module, k: int | None = None, layer_ids: list[int] | None = None) -> nn.Module:
    """A copy of ``teacher`` keeping ``layer_ids`` (0-based) or ``k`` evenly spaced layers."""
    check_layers_apart(teacher.config, type(teacher).__name__)
    layer_ids = resolve_layer_ids(teacher.config.num_hidden_layers, k, layer_ids, say=True)
    student = copy.deepcopy(teacher)
    from .features import drop_capture_hooks  # (features reads this module's find_layers)

    drop_capture_hooks(student)  # the teacher's came with the copy: the student's own comes at its first capture
    parent, attr, layers = find_layers(student)
    setattr(parent, attr, nn.ModuleList(layers[i] for i in layer_ids))
    _renumber(getattr(parent, attr))
    replaced = _keep_layers_in_config(student.config, layer_ids)
    for module in student.modules():  # (a module that keeps the config's own list: GPT-Neo's attention_layers)
        for key, value in list(vars(module).items()):
            for old, new in replaced:
                if value is old:
                    setattr(module, key, new)
    student.config.dynakd_teacher_layers = list(layer_ids)
    check_reloads(student, layer_ids)
    # trained in float32 whatever the teacher's storage (a bf16 checkpoint): mixed precision is autocast's
    return student.float().requires_grad_(True).train()  # the teacher may be frozen; its copy must train


def _keep_layers_in_config(config, layer_ids: list[int]) -> list[tuple]:
    """Say in ``config`` that only the teacher layers ``layer_ids`` remain, in that order; returns the lists replaced,
    ``(old, new)``."""
    n = config.num_hidden_layers
    stored = vars(config)  # entries, not properties derived from them; an alias (attribute_map) names its entry once
    before = dict(stored)
    for key in {config.attribute_map.get(k, k) for k in PER_LAYER_CONFIG}:
        if isinstance(value := stored.get(key), (list, tuple)) and len(value) == n:
            setattr(config, key, [value[i] for i in layer_ids])
    for key in {config.attribute_map.get(k, k) for k in LAYER_ID_CONFIG}:
        if isinstance(value := stored.get(key), (list, tuple)):
            setattr(config, key, [new for new, old in enumerate(layer_ids) if old in value])
    for key in LAYER_GROUPS_CONFIG:
        if getattr(config, key, None) == n:  # (check_layers_apart: one group per layer)
            setattr(config, key, len(layer_ids))
    kinds = stored.get("attention_layers")
    if isinstance(stored.get("attention_types"), list) and isinstance(kinds, list) and len(kinds) == n:
        # GPT-Neo spells its layers' kinds in runs ([[["global", "local"], 6]]) and derives attention_layers from them
        # when it loads: one run per kept layer
        config.attention_layers = [kinds[i] for i in layer_ids]
        config.attention_types = [[[kind], 1] for kind in config.attention_layers]
    config.num_hidden_layers = len(layer_ids)
    return [(old, stored.get(key)) for key, old in before.items()
            if isinstance(old, (list, tuple)) and stored.get(key) is not old]


def check_reloads(student: nn.Module, layer_ids: list[int]) -> None:
    """Refuse a student that its saved config would rebuild otherwise: some architectures build a layer by its
    position (ModernBERT's first layer has no attention norm, T5's first block holds the position bias), or by a
    per-layer config entry DynaKD does not know to shrink, so a copy of a layer elsewhere reloads without the weights
    or settings it trained with. Built on the meta device (no memory) from the student's config passed through a
    dict, as ``from_pretrained`` would build it, and compared by parameter names and shapes, then by the plain
    settings (numbers, flags, strings: ``use_rope``, ``sliding_window``, ``layer_idx``) of each block's modules."""
    name = type(student).__name__
    refused = f"{_article(name)} {name} student of teacher layers {layer_ids} would reload as another model"
    try:
        config = type(student.config).from_dict(student.config.to_diff_dict())
    except Exception as e:  # noqa: BLE001 - a config's own checks, as from_pretrained would meet them (a per-layer
        # list DynaKD does not shrink, which the config counts against num_hidden_layers: Qwen2's layer_types would)
        raise DynaKDError(f"{refused}: its config would not load ({first_line(e.__cause__ or e)})") from None
    try:
        with torch.device("meta"):
            fresh = type(student)(config)
    except Exception as e:  # a class that cannot be built on the meta device: nothing to compare
        say(f"could not check that the {name} student reloads as built ({first_line(e)})", stderr=True)
        return
    ours = {k: tuple(v.shape) for k, v in student.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    if ours != theirs:
        differ = sorted(set(ours) ^ set(theirs)) or sorted(k for k in ours if ours[k] != theirs[k])
        raise DynaKDError(f"{refused} ({differ[0]} differs: this architecture builds some layers by their position); "
                          "keep the teacher's first layer first, e.g. --student-layer-ids 0,...")
    if differ := _differing_setting(student, fresh):
        raise DynaKDError(f"{refused} ({differ}: a per-layer setting of its config that DynaKD does not carry over); "
                          "keep other layers, or give a smaller model of the same family with --student")


def _differing_setting(student: nn.Module, fresh: nn.Module) -> str | None:
    """The first module of a block, or plain setting of one, that differs between ``student`` and ``fresh`` (built
    from the student's config), said as ``model.layers.1.self_attn.use_rope is 0 here, 1 reloaded``. Only attributes
    both modules hold are compared: one held by a single side is run-time state (a cache), not a setting."""
    parent, attr, ours = find_layers(student)
    _, _, theirs = find_layers(fresh)
    prefix = next(name for name, module in student.named_modules() if module is parent)
    for i, (block, rebuilt) in enumerate(zip(ours, theirs)):
        rebuilt_modules = dict(rebuilt.named_modules())
        for path, module in block.named_modules():
            where = ".".join(filter(None, (prefix, attr, str(i), path)))  # as the state dict names it
            other = rebuilt_modules.get(path)
            if type(other) is not type(module):
                return f"{where} is {type(module).__name__} here, {type(other).__name__} reloaded"
            if isinstance(module, nn.Dropout):  # its rate acts in training only (and a caller may change it)
                continue
            for key in sorted(vars(module).keys() & vars(other).keys()):
                mine, its = getattr(module, key), getattr(other, key)
                if key != "training" and not key.startswith("_") and _plain(mine) and mine != its:
                    return f"{where}.{key} is {mine!r} here, {its!r} reloaded"
    return None


def _plain(value) -> bool:
    """A number, flag, string or None, or a tuple or list of them: a setting, not a tensor, module or config."""
    if isinstance(value, (tuple, list)):
        return all(map(_plain, value))
    return value is None or isinstance(value, (bool, int, float, str))


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _renumber(layers: nn.ModuleList) -> None:
    """Blocks that know their own index (for KV caches, or Longformer's ``layer_id``) get their new position."""
    for new_idx, block in enumerate(layers):
        for module in block.modules():
            for key in ("layer_idx", "layer_id"):
                if isinstance(getattr(module, key, None), int):
                    setattr(module, key, new_idx)
