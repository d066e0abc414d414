"""An unreachable hub switches the process to offline mode at once, instead of half a minute of retries per file."""

from __future__ import annotations

import socket
from pathlib import Path

import datasets.config
import pytest
from huggingface_hub import constants

from dynakd import hub


@pytest.fixture
def fresh(monkeypatch):
    """Online as far as the libraries know, no proxy, and the per-process answer forgotten (before and after)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for name in hub.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    hub.offline_unless_reachable.cache_clear()
    yield monkeypatch
    hub.offline_unless_reachable.cache_clear()


def refuse(*args, **kwargs):
    raise OSError("Name or service not known")


def test_unreachable_hub_means_offline_mode(fresh, capsys):
    fresh.setattr(socket, "create_connection", refuse)
    assert hub.offline_unless_reachable() is True
    assert constants.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE
    assert "huggingface.co cannot be reached; models and datasets come from the local" in capsys.readouterr().out


class Reached:
    def close(self):
        pass


def test_reachable_hub_and_proxies_change_nothing(fresh):
    fresh.setattr(socket, "create_connection", lambda *args, **kwargs: Reached())
    assert hub.offline_unless_reachable() is False and not constants.HF_HUB_OFFLINE
    hub.offline_unless_reachable.cache_clear()
    fresh.setattr(socket, "create_connection", refuse)  # a direct connection fails, the proxy may still reach it
    fresh.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert hub.offline_unless_reachable() is False and not constants.HF_HUB_OFFLINE


def test_a_push_that_fails_without_a_message_still_says_so(tmp_path, monkeypatch):
    """A timeout is raised as ``TimeoutError()``, with no message: the one-line error names its type (it used to end
    in an ``IndexError`` traceback after the run had finished)."""
    import huggingface_hub

    from dynakd.errors import DynaKDError

    class TimingOut:
        def create_repo(self, *args, **kwargs):
            raise TimeoutError()

    monkeypatch.setattr(huggingface_hub, "HfApi", TimingOut)
    with pytest.raises(DynaKDError, match=r"pushing it to me/student failed: TimeoutError; retry with `hf upload"):
        hub.push_folder(tmp_path, "me/student", private=False, message="m")
    # the retry keeps a private run private (hf upload creates a public repository unless told), and its folder quoted
    (tmp_path / "a space").mkdir()
    (tmp_path / "a space" / "config.json").write_text("{}")
    with pytest.raises(DynaKDError, match=r"retry with `hf upload me/student '.* space' --private "
                                          r"--include=config.json '--exclude=checkpoint-\*'"):
        hub.push_folder(tmp_path / "a space", "me/student", private=True, message="m")


def test_the_published_record_names_the_default_cache_from_home(tmp_path, monkeypatch):
    """metrics.json, pushed with the run, named the teacher cache by its absolute path: /home/<user>/.cache/..."""
    from dynakd.rundir import home_relative

    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_relative(tmp_path / ".cache" / "dynakd" / "abc") == "~/.cache/dynakd/abc"
    assert home_relative(Path("/elsewhere/c")) == "/elsewhere/c"
    (tmp_path / "scratch").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".cache").symlink_to(tmp_path / "scratch")  # ~/.cache on another disk
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert home_relative(tmp_path / "home" / ".cache" / "abc") == "~/.cache/abc"


def test_a_run_switches_the_hub_offline_for_itself_alone(fresh, capsys):
    """A notebook that met the hub unreachable in one ``distill`` stayed offline for every later ``from_pretrained``,
    and its later runs neither asked again nor said so. A run's scope also closes the bars a stopped run left open
    (not the caller's own) and forgets the notes said once a run."""
    import tqdm

    from dynakd.data import squad
    from dynakd.runner import run_scope

    fresh.setattr(socket, "create_connection", refuse)
    for _ in range(2):  # each run asks, and says so
        with run_scope(progress=False):
            assert hub.offline_unless_reachable() is True and constants.HF_HUB_OFFLINE
        assert "huggingface.co cannot be reached" in capsys.readouterr().out
        assert not constants.HF_HUB_OFFLINE and not datasets.config.HF_HUB_OFFLINE
        assert __import__("os").environ["HF_HUB_OFFLINE"] == "0"  # as it was
    squad._NOTED_CUTS.add((64, 48, 12))
    mine = tqdm.tqdm(total=3)
    with pytest.raises(KeyboardInterrupt), run_scope(progress=False):
        assert not squad._NOTED_CUTS
        theirs = tqdm.tqdm(total=3)
        raise KeyboardInterrupt
    assert theirs.disable and not mine.disable  # (tqdm's closed bar is disabled)
    mine.close()


def test_runs_inside_a_sweep_share_one_answer(fresh, capsys):
    """Each run's scope asked the hub again: a sweep on an offline machine waited up to 3 s and said so per cell."""
    from dynakd.runner import run_scope

    asked = []
    fresh.setattr(socket, "create_connection", lambda *a, **k: asked.append(1) or refuse())
    with hub.offline_for_this_run():  # (run_sweep's)
        for _ in range(3):
            with run_scope(progress=False):
                hub.offline_unless_reachable()
        assert constants.HF_HUB_OFFLINE  # (still the sweep's answer between its runs)
    assert len(asked) == 1 and capsys.readouterr().out.count("cannot be reached") == 1
    assert not constants.HF_HUB_OFFLINE
