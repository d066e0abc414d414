"""Per-layer norms of pooled hidden states, and the relative update sizes the layer change's magnitude form compares
(``||p[l+1] - p[l]|| / ||p[l]||``, and from the embeddings ``||p[l] - p[0]|| / ||p[0]||``), for mean pooling, mean
pooling without the first token, and the last real token; on the first 16 SST-2 dev sentences. The top layer is as
transformers returns it, after a decoder's final norm (DynaKD reads it before: README, "Model families").

    python benchmarks/decoder/pooled_norms.py MODEL_DIR [MODEL_DIR ...] [--data ../shared/data/glue]

Why a pretrained pre-LN decoder's ``full`` run is swamped by ``dyn/layer_change`` (benchmarks/LOG.md, session 47):
its states grow from norm ~1 at the embeddings to ~1,500, where an encoder's LayerNorm'd layers keep them level.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer


def pooled(model_dir: str, sentences: list[str]) -> dict[str, torch.Tensor]:
    """``{pooling: [L+1, B, d]}`` of the model's hidden states (right padding)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(sentences, return_tensors="pt", padding=True)
    with torch.no_grad():
        states = torch.stack(model(**batch, output_hidden_states=True).hidden_states)  # [L+1, B, T, d]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    rest = mask.clone()
    rest[:, 0] = 0
    last = batch["attention_mask"].sum(1) - 1
    return {"mean": (states * mask).sum(2) / mask.sum(1),
            "mean without the first token": (states * rest).sum(2) / rest.sum(1),
            "last token": states[:, torch.arange(states.shape[1]), last]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="../shared/data/glue")
    args = parser.parse_args()
    rows = (Path(args.data) / "SST-2" / "dev.tsv").read_text().splitlines()[1:17]
    sentences = [row.split("\t")[0] for row in rows]
    torch.set_grad_enabled(False)
    for model_dir in args.models:
        print(model_dir)
        for name, x in pooled(model_dir, sentences).items():
            norms = x.norm(dim=-1)
            step = ((x[1:] - x[:-1]).norm(dim=-1) / norms[:-1]).mean(1)
            from_embeddings = ((x[1:] - x[0]).norm(dim=-1) / norms[0]).mean(1)
            print(f"  {name}")
            for label, values in (("norm", norms.mean(1)), ("step ratio", step),
                                  ("ratio from the embeddings", from_embeddings)):
                print(f"    {label:26s} " + " ".join(f"{v:.3g}" for v in values.tolist()))


if __name__ == "__main__":
    main()
