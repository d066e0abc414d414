"""A built-in, deterministic sentiment corpus in SST-2 format, for offline demos and tests.

Sentences are built from templates: "the plot is very clever" (plain), "the acting was not good" (negation flips
the adjective's sentiment), "the film is dull , but the ending was brilliant" (a contrast takes the sentiment of
the clause after "but"). Negated and contrast sentences contain words of both polarities, so a bag of words is not
enough; word order and negation scope must be learned.
"""

from __future__ import annotations

import random

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

POSITIVE = (
    "good",
    "great",
    "wonderful",
    "charming",
    "brilliant",
    "moving",
    "funny",
    "clever",
    "delightful",
    "engaging",
    "beautiful",
    "superb",
)
NEGATIVE = (
    "bad",
    "awful",
    "boring",
    "dull",
    "terrible",
    "clumsy",
    "tedious",
    "bland",
    "weak",
    "lifeless",
    "predictable",
    "painful",
)
SUBJECTS = (
    "the film",
    "the movie",
    "the plot",
    "the acting",
    "the script",
    "the soundtrack",
    "the ending",
    "the cast",
    "the direction",
    "the dialogue",
    "the story",
    "the pacing",
)
VERBS = ("is", "was", "feels", "seems")
INTENSIFIERS = ("", "very", "really", "quite", "truly", "remarkably", "incredibly")
NEGATORS = ("not", "hardly", "far from")
PREFIXES = ("", "honestly ,", "overall ,", "in the end ,", "to be fair ,")
CONNECTIVES = (", but", ", and")

SYNTHETIC_VOCAB_WORDS: list[str] = sorted(
    {
        word
        for group in (POSITIVE, NEGATIVE, SUBJECTS, VERBS, INTENSIFIERS, NEGATORS, PREFIXES, CONNECTIVES)
        for phrase in group
        for word in phrase.split()
    }
)

# (form, weight): how often each sentence shape appears.
_FORMS = (("plain", 0.30), ("negated", 0.25), ("contrast", 0.35), ("agree", 0.10))


def _clause(rng: random.Random, positive: bool, negated: bool) -> str:
    """One clause whose overall sentiment is ``positive``; a negated clause uses an adjective of the other polarity."""
    adjective_positive = positive != negated
    adjective = rng.choice(POSITIVE if adjective_positive else NEGATIVE)
    middle = rng.choice(NEGATORS) if negated else rng.choice(INTENSIFIERS)
    return " ".join(part for part in (rng.choice(SUBJECTS), rng.choice(VERBS), middle, adjective) if part)


def _sentence(rng: random.Random, positive: bool) -> str:
    """A sentence whose sentiment is ``positive``, in one of the template forms."""
    form = rng.choices([name for name, _ in _FORMS], weights=[weight for _, weight in _FORMS])[0]
    if form in ("plain", "negated"):
        prefix = rng.choice(PREFIXES)
        body = _clause(rng, positive, negated=form == "negated")
        return f"{prefix} {body}" if prefix else body
    first_positive = positive if form == "agree" else not positive
    first = _clause(rng, first_positive, negated=rng.random() < 0.3)
    second = _clause(rng, positive, negated=rng.random() < 0.3)
    connective = ", and" if form == "agree" else ", but"
    return f"{first} {connective} {second}"


def _generate(rng: random.Random, n: int, exclude: set[str]) -> tuple[list[str], list[int]]:
    """``n`` sentences with exactly balanced labels (n // 2 negative at least), none of them in ``exclude``."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    texts = []
    for label in labels:
        text = _sentence(rng, positive=bool(label))
        for _ in range(100):
            if text not in exclude:
                break
            text = _sentence(rng, positive=bool(label))
        texts.append(text)
    return texts, labels


def synthetic_sentiment(n_train: int = 4000, n_eval: int = 500, seed: int = 0) -> DatasetDict:
    """The synthetic corpus: splits "train" and "validation" with columns text_a (str) and label (0 negative,
    1 positive, as SST-2). The same arguments always give the same data; labels are balanced within one example,
    and validation sentences do not occur in train (up to 100 redraws each)."""
    rng = random.Random(seed)
    train_texts, train_labels = _generate(rng, n_train, exclude=set())
    eval_texts, eval_labels = _generate(rng, n_eval, exclude=set(train_texts))
    features = Features({"text_a": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return DatasetDict(
        {
            "train": Dataset.from_dict({"text_a": train_texts, "label": train_labels}, features=features),
            "validation": Dataset.from_dict({"text_a": eval_texts, "label": eval_labels}, features=features),
        }
    )
