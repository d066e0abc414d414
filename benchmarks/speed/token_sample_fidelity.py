"""How well the forms of a sample of each window's tokens (``dynamics.token_sample``) stand in for those of every
token, and what they cost: real SQuAD windows through the bench's models, MiniLM-L6 (the teacher) and a 2-layer
student built from it (``students.build_student``, as ``dynakd distill --student-layers 2``), the default components
under the uniform map's plan, float32.

For each K: the dynamics loss and the gradient it gives the student's weights, drawn ``--draws`` times, against the
loss and gradient of every token (the same batch and weights): the loss's mean and spread relative to every token's,
the cosine of one draw's gradient with every token's, and of the draws' mean gradient, and one draw's gradient norm
relative to every token's (median of the draws); and the seconds of the costs, forward and backward from the
student's states to the loss (the models' own passes and the draw itself are not timed), median of the draws (of 3
runs for every token).

    python benchmarks/speed/token_sample_fidelity.py --output benchmarks/speed/token_sample_fidelity.json

The batch: the ``--windows`` longest windows of 384 tokens (stride 128) of dev-v1.1.json's first ``--questions``
questions, padded to the longest (a long batch, as length-grouped batches make); the JSON records their real tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from dynakd.data.squad import prepare_train_features, read_squad_json
from dynakd.experiments.bench import processor_name
from dynakd.losses.dynamics import DynamicsOptions, dynamics_costs, plan_loss, sample_tokens
from dynakd.packaged import resolve
from dynakd.provenance import source_commit
from dynakd.students import build_student


def windows(path: Path, tokenizer, n: int, questions: int, length: int = 384, stride: int = 128):
    """The ``n`` longest windows (most real tokens) of the first ``questions`` questions, cut as training cuts them
    (``data.squad.prepare_train_features``), padded to the longest."""
    rows = [row for article in read_squad_json(str(path)) for row in article["rows"]][:questions]
    enc = prepare_train_features({k: [row[k] for row in rows] for k in rows[0]}, tokenizer, length, stride)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    longest = sorted(range(len(enc["input_ids"])), key=lambda i: -len(enc["input_ids"][i]))[:n]
    return dict(tokenizer.pad([{k: enc[k][i] for k in keys} for i in longest], return_tensors="pt"))


def dynamics(student, teacher_hidden, batch, plan, opts, k):
    """The loss of one draw (every token where ``k`` is None) and its gradient to the student's weights, with the
    seconds of the costs alone (forward and backward)."""
    student.zero_grad(set_to_none=True)
    hidden = student(**batch, output_hidden_states=True).hidden_states
    leaves = [h.detach().requires_grad_(True) for h in hidden]  # (the costs timed apart from the student's backward)
    mask = batch["attention_mask"]
    tokens = None if k is None else sample_tokens(mask, k)
    start = time.perf_counter()
    costs = dynamics_costs(leaves, teacher_hidden, mask=mask, opts=opts, anchors=[0, 3], plan_first=True,
                           tokens=tokens)
    loss = sum(plan_loss(plan, c) for c in costs.values())
    loss.backward()
    seconds = time.perf_counter() - start
    torch.autograd.backward(hidden, [h.grad for h in leaves])
    grad = torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None]).double()  # (15M terms)
    return float(loss.detach()), grad, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", default="../shared/data/squad/dev-v1.1.json")
    parser.add_argument("--teacher", default="minilm")
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--samples", default="64,128,192")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    name = resolve(args.teacher)
    tokenizer = AutoTokenizer.from_pretrained(name)
    teacher = AutoModel.from_pretrained(name).eval()
    student = build_student(teacher, 2).train()
    student.config.hidden_dropout_prob = student.config.attention_probs_dropout_prob = 0.0
    for module in student.modules():  # (dropout off: every draw sees the same states, only the tokens differ)
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = windows(Path(args.squad), tokenizer, args.windows, args.questions)
    with torch.no_grad():
        teacher_hidden = teacher(**batch, output_hidden_states=True).hidden_states
    real = batch["attention_mask"].sum(1)
    plan = torch.zeros(2, 6)
    plan[0, 2], plan[1, 5] = 1.0, 1.0  # the uniform map of 2 student layers under 6: teacher layers 3 and 6
    opts = DynamicsOptions(pooling="tokens")

    full_loss, full_grad, _ = dynamics(student, teacher_hidden, batch, plan, opts, None)
    full_seconds = [dynamics(student, teacher_hidden, batch, plan, opts, None)[2] for _ in range(3)]
    rows = [{"token_sample": None, "loss": full_loss, "seconds_median": statistics.median(full_seconds),
             "seconds": full_seconds}]
    print(f"every token: loss {full_loss:.5f}, costs {statistics.median(full_seconds):.3f} s")
    for k in (int(x) for x in args.samples.split(",")):
        losses, cosines, grads, norms, seconds = [], [], [], [], []
        for _ in range(args.draws):
            loss, grad, sec = dynamics(student, teacher_hidden, batch, plan, opts, k)
            losses.append(loss)
            grads.append(grad)
            cosines.append(float(torch.nn.functional.cosine_similarity(grad, full_grad, dim=0)))
            norms.append(float(grad.norm() / full_grad.norm()))
            seconds.append(sec)
        mean_grad = torch.stack(grads).mean(0)
        row = {"token_sample": k, "loss_mean_rel": statistics.mean(losses) / full_loss,
               "loss_sd_rel": statistics.stdev(losses) / full_loss, "grad_cosine_one_draw": cosines,
               "grad_cosine_mean_of_draws": float(torch.nn.functional.cosine_similarity(mean_grad, full_grad, dim=0)),
               "grad_norm_rel_one_draw": statistics.median(norms),
               "seconds_median": statistics.median(seconds), "seconds": seconds}
        rows.append(row)
        print(f"K={k}: loss {row['loss_mean_rel']:.3f} +- {row['loss_sd_rel']:.3f} of every token's; gradient cosine "
              f"one draw {statistics.median(cosines):.3f} [{min(cosines):.3f}, {max(cosines):.3f}], mean of "
              f"{args.draws} {row['grad_cosine_mean_of_draws']:.3f}; costs {row['seconds_median']:.3f} s")
    result = {"setup": {"teacher": args.teacher, "student_layers": 2, "windows": args.windows,
                        "questions": args.questions, "tokens": int(batch["input_ids"].shape[1]),
                        "real_tokens_mean": float(real.float().mean()), "real_tokens_min": int(real.min()),
                        "draws": args.draws, "seed": args.seed, "plan": "uniform map (teacher layers 3, 6)",
                        "device": processor_name(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                        "commit": source_commit(), "date": time.strftime("%Y-%m-%d")},
              "rows": rows}
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
