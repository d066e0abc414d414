"""Fingerprints for ``Dataset.map``, computed from what decides its output.

Without ``new_fingerprint``, datasets pickles the mapped function with dill to hash it, closure (tokenizers) and all,
inside a bare ``except:`` that also swallows a Ctrl-C arriving then: the run went on, and a sweep on to its next cell.
These fingerprints name every input of a map, so that a changed input (another tokenizer, max length, file, or code)
never reads the cached output of another. A file is known to datasets by its path and modification time, as
``load_dataset`` knows it: an edit that keeps both reads the old rows.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path


def map_fingerprint(ds, code, *settings) -> str:
    """``new_fingerprint`` for ``ds.map``: a hash of ``ds``'s own fingerprint (its rows and their history), of the
    source of ``code`` (the mapped function, or the module that holds it and its helpers) and of ``settings`` (every
    other value the output depends on, by ``repr``; a tokenizer by ``tokenizer_state``)."""
    h = hashlib.blake2b(digest_size=16)  # 32 hex digits: datasets appends shard suffixes to it, up to its 64
    for part in (ds._fingerprint, _source(code), *map(repr, settings)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _source(code) -> str:
    try:
        return inspect.getsource(code)
    except (OSError, TypeError):  # no source file (e.g. a frozen install): the name, and a function's bytecode
        function = getattr(code, "__code__", None)
        return code.__name__ + (function.co_code.hex() if function else "")


def tokenizer_state(tokenizer) -> str:
    """What decides a tokenizer's encodings, as text: its class and settings (``repr``: special tokens, sides, added
    tokens; ``init_kwargs``: lower-casing, accents), and its whole pipeline when it is a fast one (vocabulary,
    normalizer, pre-tokenizer, post-processor), else its vocabulary and the files it was built from. The pipeline's
    truncation and padding are left out: each call sets them."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: its vocabulary and the files it was built from (BPE merges, a
        # SentencePiece model: what the vocabulary alone does not say)
        paths = [Path(v) for k, v in sorted(tokenizer.init_kwargs.items())
                 if k in tokenizer.vocab_files_names and isinstance(v, (str, Path))]
        contents = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths if path.is_file()]
        pipeline = [sorted(tokenizer.get_vocab().items()), contents]
    else:
        pipeline = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    settings = json.dumps(tokenizer.init_kwargs, sort_keys=True, default=str)
    return "\n".join((repr(tokenizer), settings, json.dumps(pipeline, sort_keys=True)))
