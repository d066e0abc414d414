"""A model that comes with code of its own (config.json's ``auto_map``: a hub model's modeling file), loaded only
with ``--trust-remote-code``, as run_glue.py's ``--trust_remote_code``; built here as a folder, no hub."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoModelForSequenceClassification

from dynakd.cli import main
from tests.conftest import make_tiny_bert
from tests.e2e.test_cli import FAST

CONFIG_CODE = """from transformers import BertConfig


class TinyXConfig(BertConfig):
    model_type = "tinyx"
"""
MODEL_CODE = """from transformers import BertForSequenceClassification

from .configuration_tinyx import TinyXConfig


class TinyXForSequenceClassification(BertForSequenceClassification):
    config_class = TinyXConfig
"""


def own_code_model(folder: Path) -> Path:
    """A tiny BERT classifier whose config names classes of its own, in files beside it."""
    make_tiny_bert(folder)
    (folder / "configuration_tinyx.py").write_text(CONFIG_CODE)
    (folder / "modeling_tinyx.py").write_text(MODEL_CODE)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tinyx", architectures=["TinyXForSequenceClassification"],
                  auto_map={"AutoConfig": "configuration_tinyx.TinyXConfig",
                            "AutoModelForSequenceClassification": "modeling_tinyx.TinyXForSequenceClassification"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_model_of_its_own_code_loads_with_trust_remote_code_alone(tmp_path, capsys):
    """An HF user's model of its own code (many of the hub's newer encoders) failed on transformers' question, asked
    on a terminal ("Do you wish to run the custom code? [y/N]"), then its error: no flag said how to allow it."""
    teacher = own_code_model(tmp_path / "own_code_teacher")  # (transformers copies its code under this name)
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(teacher), "--student-layers", "2", *FAST, "--output", str(out)]
    assert main(args) == 2
    assert ("it comes with code of its own (its config.json's auto_map), which DynaKD runs only when told: read it, "
            "then add --trust-remote-code") in capsys.readouterr().err
    assert main([*args, "--trust-remote-code"]) == 0
    # the student is saved with the code it needs, and loads as the card says
    assert {"configuration_tinyx.py", "modeling_tinyx.py"} <= {p.name for p in out.iterdir()}
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    assert type(model).__name__ == "TinyXForSequenceClassification" and model.config.num_hidden_layers == 2
    assert "max_length=32, trust_remote_code=True)" in (out / "README.md").read_text()
    # a run folder does not lend it: scoring someone's run runs its code only when told
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--no-progress"]) == 2
    assert "add --trust-remote-code" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(out), "--no-progress", "--trust-remote-code"]) == 0
    # nor does its dynakd.yaml, given as a --config (a review found the flag kept there), nor does it make runs differ
    assert "trust_remote_code: true" not in (out / "dynakd.yaml").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--config", str(out / "dynakd.yaml"), "--model", str(out), "--no-progress"]) == 2
    assert "add --trust-remote-code" in capsys.readouterr().err


def test_a_model_without_code_of_its_own_is_not_loaded_by_trusting_code_in_its_card(tiny_teacher, tmp_path):
    """A review: the card told readers to load a plain BERT with trust_remote_code=True, because the run was given
    the flag: it follows the saved model's config (auto_map), not the flag."""
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(tiny_teacher), "--student-layers", "2", *FAST, "--output", str(out),
                 "--trust-remote-code"]) == 0
    assert "trust_remote_code" not in (out / "README.md").read_text()
