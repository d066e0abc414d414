"""The Hugging Face hub, reached or not.

Without a network the hub client retries every file for about half a minute before it fails, or before it falls
back to the local cache. Compute nodes without internet are common, so before the first download DynaKD checks
once whether the hub's host answers; if not, the process switches to offline mode (what ``HF_HUB_OFFLINE=1`` does):
cached models and datasets load at once and the others fail at once, with the libraries' own message.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@functools.cache
def offline_unless_reachable(timeout: float = 3.0) -> bool:
    """Switch to offline mode when the hub's host does not answer; True if offline. Checked once per process.

    Behind a proxy a direct connection says nothing about the hub, so nothing is checked there; nor when offline
    mode is already chosen.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
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
    print(f"note: {url.hostname} cannot be reached; models and datasets come from the local Hugging Face cache only "
          "(as with HF_HUB_OFFLINE=1)", flush=True)
    return True
