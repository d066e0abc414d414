"""JSON that strict parsers read. Python's ``json`` writes NaN and infinities bare (``NaN``, ``Infinity``), which jq,
JavaScript and most other parsers refuse; a regression metric on constant labels is NaN. They are written as ``null``,
and every reader in DynaKD takes ``null`` for a score that could not be computed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` with every non-finite number as ``null``; numpy and torch scalars as the Python numbers they
    hold (an integer stays one)."""
    return json.dumps(_finite(obj), allow_nan=False, default=_scalar, **kwargs)


def _scalar(o: Any) -> Any:
    item = getattr(o, "item", None)  # numpy and torch scalars (and one-element arrays and tensors)
    if item is None or getattr(o, "ndim", 0) != 0:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
    return _finite(item())


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def field(path: Path, key: str) -> Any:
    """``key`` of the JSON object in file ``path``; None where the file is missing, not JSON or not an object (a
    file a run may or may not have written: a saved model's config, its tokenizer's)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):  # (AttributeError: JSON that is no object)
        return None
