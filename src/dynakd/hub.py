"""The Hugging Face hub, reached or not; and pushing a trained model to it.

Without a network the hub client retries every file for about half a minute before it fails, or before it falls
back to the local cache. Compute nodes without internet are common, so before the first download DynaKD checks
once whether the hub's host answers; if not, the process switches to offline mode (what ``HF_HUB_OFFLINE=1`` does):
cached models and datasets load at once and the others fail at once, with the libraries' own message.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import DynaKDError, first_line

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline() -> bool:
    """Whether offline mode is on (``HF_HUB_OFFLINE``, or switched on by ``offline_unless_reachable``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@functools.cache
def offline_unless_reachable(timeout: float = 3.0) -> bool:
    """Switch to offline mode when the hub's host does not answer; True if offline. Checked once a run (a command;
    a sweep's runs together: ``offline_for_this_run``).

    Behind a proxy a direct connection says nothing about the hub, so nothing is checked there; nor when offline
    mode is already chosen.
    """
    from huggingface_hub import constants

    if offline():
        return True
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return False
    except OSError:
        pass
    os.environ["HF_HUB_OFFLINE"] = "1"  # read by libraries imported later
    constants.HF_HUB_OFFLINE = True  # read at each request by huggingface_hub and transformers
    try:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True
    except ImportError:
        pass
    from .distributed import note  # (torch: loaded by then, as the models and data this is asked for need it)

    note(f"{url.hostname} cannot be reached; models and datasets come from the local Hugging Face cache only (as "
         "with HF_HUB_OFFLINE=1)")  # (once: every process of a launched run asks)
    return True


_ASKED = offline_unless_reachable  # (the cached check itself: a test may stand another in under its name)
_SCOPES = [0]  # how many offline_for_this_run are open: the outermost one restores


@contextlib.contextmanager
def offline_for_this_run():
    """The offline switch of ``offline_unless_reachable`` scoped to one run (a Python caller's call of ``distill``,
    say): a notebook that met the hub unreachable once stayed offline for every later ``from_pretrained``, and later
    runs neither asked again nor said so. Restored afterwards, and asked again by the next run; runs inside an open
    scope (a sweep's cells) share its answer, asked once."""
    import datasets.config
    from huggingface_hub import constants

    before = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    _SCOPES[0] += 1
    try:
        yield
    finally:
        _SCOPES[0] -= 1
        if not _SCOPES[0]:  # (the outermost scope)
            if before[0] is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = before[0]
            constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = before[1:]
            _ASKED.cache_clear()


# What a pushed run folder leaves out: resumable checkpoints (kept with --keep-checkpoints), hidden and partial files.
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", ".*", "*.tmp"]


def check_push(repo_id: str, private: bool = False) -> str:
    """Before training: the repository id is well formed, a token is there, the hub answers and accepts the token,
    and a private push is not bound for an existing public repository (a push that can only fail, or publish what
    was asked to stay private, should not wait for the end of a long run). Write access to the namespace is learnt
    only at the upload. Returns the id whole: a bare ``name`` is the token's user's ``user/name`` (as
    ``create_repo`` makes it; the upload and the card must name it so too)."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise DynaKDError(f"--push-to-hub '{repo_id}' is not a hub repository id (name or namespace/name): "
                          f"{first_line(e)}") from None
    if get_token() is None:
        raise DynaKDError("--push-to-hub needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")
    if offline_unless_reachable():
        raise DynaKDError("--push-to-hub needs the hub, which cannot be reached from here (or HF_HUB_OFFLINE is "
                          "set); train without it and upload the folder later with `hf upload`")
    api = HfApi()
    try:
        user = api.whoami()
    except Exception as e:  # noqa: BLE001 - HTTP (huggingface_hub's) or connection (httpx's) errors alike
        if _status(e) in (401, 403):
            raise DynaKDError(f"--push-to-hub: the hub refused the token ({first_line(e)}); run `hf auth "
                              "login` again or set HF_TOKEN") from None
        # behind a proxy the reachability check is skipped: a proxy that is down lands here, not a bad token
        raise DynaKDError(f"--push-to-hub: the hub could not check the token ({first_line(e)}); check the "
                          "connection (and proxy settings), or train without it and upload later with `hf "
                          "upload`") from None
    if "/" not in repo_id and isinstance(user, dict) and user.get("name"):
        repo_id = f"{user['name']}/{repo_id}"
    if private and _is_public(api, repo_id):  # create_repo(private=True) leaves an existing repository as it is
        raise DynaKDError(f"--hub-private: {repo_id} exists and is public, and a push does not change that; make "
                          "it private on the hub first, or push to another repository")
    return repo_id


def _status(error: Exception) -> int | None:
    """The HTTP status of a hub client's error, None for one without a response (a connection that failed)."""
    return getattr(getattr(error, "response", None), "status_code", None)


def _is_public(api, repo_id: str) -> bool:
    """Whether ``repo_id`` is an existing public model repository; False when it does not exist (it will be created
    private) or this token cannot see it (someone else's private one: the upload will say). Any other failure (a
    timeout, the hub's 5xx) is an error: a private run must not go on toward a repository that may be public."""
    try:
        return api.repo_info(repo_id).private is False
    except Exception as e:  # noqa: BLE001 - HTTP (huggingface_hub's) or connection (httpx's) errors alike
        if _status(e) in (401, 403, 404):
            return False
        raise DynaKDError(f"--hub-private: cannot tell whether {repo_id} exists and is public ({first_line(e)}); "
                          "try again, or push without --hub-private") from None


def push_folder(folder: Path, repo_id: str, *, private: bool, message: str) -> str:
    """Create ``repo_id`` if needed and upload the run folder to it in one commit; returns the repository's URL.

    Not the Trainer's ``push_to_hub``: that pushes the Trainer's output folder (checkpoints' parent) with its own
    card, at save time; a DynaKD run is published once, finished, with its own card (``card.py``)."""
    import shlex

    from huggingface_hub import HfApi

    from .rundir import published_files

    allow = published_files(folder)  # what the run wrote: a log or notes beside it stay private
    retry = shlex.join(["hf", "upload", repo_id, str(folder), *(["--private"] if private else []),
                        *(f"--include={p}" for p in allow), *(f"--exclude={p}" for p in PUSH_IGNORE)])
    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        public = private and _is_public(api, url.repo_id)  # made public since the check before training
        if not public:
            api.upload_folder(repo_id=url.repo_id, folder_path=folder, commit_message=message, allow_patterns=allow,
                              ignore_patterns=list(PUSH_IGNORE))  # (the client adds its own to the list it is given)
    except DynaKDError as e:
        raise DynaKDError(f"the model is saved in {folder}, but not pushed: {e}") from None
    except Exception as e:  # noqa: BLE001 - HTTP, connection (httpx) or file errors alike: the model is saved
        # and the run's one-line error must say so, never a traceback after hours of training
        raise DynaKDError(f"the model is saved in {folder}, but pushing it to {repo_id} failed: "
                          f"{first_line(e)}; retry with `{retry}`") from None
    if public:
        raise DynaKDError(f"the model is saved in {folder}, but not pushed: {url.repo_id} is public, and the run "
                          f"asked for a private repository; make it private on the hub, then upload with `{retry}`")
    return str(url)
