"""A tiny SQuAD v1.1 file and tiny BERT question-answering models over its words, built in the tests.

Four articles: answers at the start and the end of a context, several gold answers for one question, unicode
(accents stripped by the tokenizer, CJK characters split one per token), and a context many windows long whose
answers fall across window borders, one of them longer than any sensible ``max_answer_length``.
"""

from __future__ import annotations

import json
from pathlib import Path

LONG_CONTEXT = (
    "The old mill was built by Anna Berg in 1820. Farmers brought grain from the northern hills every autumn. "
    "The mill wheel was made of oak and iron. In 1865 a flood destroyed the lower dam. The village rebuilt the dam "
    "with stone from the quarry at Hollow Ridge. A school opened next to the mill in 1871. The first teacher was a "
    "man named Tomas Lind. Children learned reading, writing and the rules of the river trade. The mill closed in "
    "1950 when the electric plant opened downstream. Today the building is a museum about the river, the mill and "
    "the people who worked there for more than a century."
)
LONG_ANSWER = "reading, writing and the rules of the river trade"  # 11 tokens


def _qa(qid: str, question: str, context: str, *answers: str) -> dict:
    out = []
    for a in answers:
        start = context.index(a)
        out.append({"text": a, "answer_start": start})
    return {"id": qid, "question": question, "answers": out}


def squad_articles() -> list[dict]:
    paris = ("Paris is the capital of France. The Eiffel Tower was completed in 1889 and stands on the "
             "Champ de Mars.")
    zurich = ("Zürich is the largest city in Switzerland. Its café culture dates to the 1700s, and the lake is "
              "called Zürichsee. 北京 is not in Switzerland.")
    rivers = "The Rhine flows through six countries. The Danube flows through ten countries and ends in the Black Sea."
    return [
        {"title": "Paris", "paragraphs": [{"context": paris, "qas": [
            _qa("p1", "What is the capital of France?", paris, "Paris"),
            _qa("p2", "When was the Eiffel Tower completed?", paris, "1889"),
            _qa("p3", "Where does the Eiffel Tower stand?", paris, "the Champ de Mars.", "Champ de Mars"),
        ]}]},
        {"title": "Zürich", "paragraphs": [{"context": zurich, "qas": [
            _qa("z1", "What is the largest city in Switzerland?", zurich, "Zürich"),
            _qa("z2", "What is the lake called?", zurich, "Zürichsee"),
            _qa("z3", "Which city is not in Switzerland?", zurich, "北京"),
            _qa("z4", "What culture dates to the 1700s?", zurich, "café culture", "café"),
        ]}]},
        {"title": "Mill", "paragraphs": [{"context": LONG_CONTEXT, "qas": [
            _qa("m1", "Who built the old mill?", LONG_CONTEXT, "Anna Berg"),
            _qa("m2", "What destroyed the lower dam in 1865?", LONG_CONTEXT, "a flood"),
            _qa("m3", "Where did the stone for the new dam come from?", LONG_CONTEXT, "the quarry at Hollow Ridge"),
            _qa("m4", "What did children learn?", LONG_CONTEXT, LONG_ANSWER),
            _qa("m5", "When did the mill close?", LONG_CONTEXT, "1950"),
            _qa("m6", "What is the building today?", LONG_CONTEXT, "a museum about the river"),
            _qa("m7", "Who was the first teacher?", LONG_CONTEXT, "Tomas Lind"),
        ]}]},
        {"title": "Rivers", "paragraphs": [{"context": rivers, "qas": [
            _qa("r1", "How many countries does the Rhine flow through?", rivers, "six"),
            _qa("r2", "Where does the Danube end?", rivers, "the Black Sea", "Black Sea"),
        ]}]},
    ]


def write_squad(path: Path, articles: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": articles or squad_articles()}, ensure_ascii=False))
    return path


def fixture_words() -> list[str]:
    """Every pre-token of the fixture's texts after BERT's normalisation (lower case, accents stripped)."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm, pre = BertNormalizer(lowercase=True, strip_accents=True), BertPreTokenizer()
    texts = []
    for article in squad_articles():
        for p in article["paragraphs"]:
            texts += [p["context"]] + [q["question"] for q in p["qas"]]
    return sorted({w for t in texts for w, _ in pre.pre_tokenize_str(norm.normalize_str(t))})


def make_tiny_qa_bert(folder: Path, *, layers: int = 4, hidden: int = 32, seed: int = 0, qa: bool = True) -> Path:
    """Save a tiny random BERT (with a QA head, or a bare encoder) and a WordPiece tokenizer over the fixture."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + fixture_words())}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128)
    torch.manual_seed(seed)
    model = BertForQuestionAnswering(config) if qa else BertModel(config)
    model.save_pretrained(folder)
    return folder
