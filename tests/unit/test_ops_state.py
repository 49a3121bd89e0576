"""wsgiship.ops.state.force_unlock (`fab unlock`): what it says it removed. The Remote is
fakes.LocalRemote: its `run` answers a given Result, or runs the script here on a deploy tree
in tmp_path."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import LocalRemote

from wsgiship.commands import release as rel
from wsgiship.config import App
from wsgiship.errors import WsgishipError
from wsgiship.layout import paths_for
from wsgiship.ops import state
from wsgiship.remote import Result


def unlock(remote: LocalRemote, app: App) -> str:
    """force_unlock through the stand-in."""
    return state.force_unlock(remote, app)  # type: ignore[arg-type]  # a Remote stand-in


HOLDER = json.dumps({"by": "alice@laptop", "action": "rollback", "token": "t"})


@pytest.mark.parametrize("stdout, said", [
    (f"removed\n{HOLDER}\n", "removed the lock on /srv/shop held by alice@laptop (rollback) since ?"),
    # the holder's first line is the holder
    (f"removed\n{HOLDER}\nmore\n", "removed the lock on /srv/shop held by alice@laptop (rollback)"
                                   " since ?"),
    # a lock without a (readable) holder was still a lock, and it is gone
    ("removed\n", "removed the lock on /srv/shop held by an unknown holder (unreadable lock)"),
    ("removed", "removed the lock on /srv/shop held by an unknown holder (unreadable lock)"),
    ("removed\nnot json\n",
     "removed the lock on /srv/shop held by an unknown holder (unreadable lock)"),
    # nothing printed: there was no lock
    ("", "no lock on /srv/shop"),
    ("\n", "no lock on /srv/shop"),
    # only a first line `removed` says a lock was removed
    (f"{HOLDER}\n", "no lock on /srv/shop"),
    ("not removed\n", "no lock on /srv/shop"),
])
def test_force_unlock_says_what_it_removed(make_app: Callable[..., App], stdout: str,
                                           said: str) -> None:
    app = make_app(name="shop", deploy_to="/srv/shop")
    remote = LocalRemote(Result(0, stdout, ""))
    assert unlock(remote, app) == said
    assert remote.events == ["open", "run unlock", "close"]
    assert remote.scripts == [rel.force_unlock(paths_for(app))]


def test_force_unlock_closes_the_connection_when_the_script_fails(
        make_app: Callable[..., App]) -> None:
    remote = LocalRemote(fail=WsgishipError("unlock failed (exit 1)"))
    with pytest.raises(WsgishipError, match="unlock failed"):
        unlock(remote, make_app())
    assert remote.events == ["open", "run unlock", "close"]


def test_force_unlock_on_a_deploy_tree(make_app: Callable[..., App], deploy: Path, sh) -> None:
    # the script run for real: a lock prepare took, then no lock, then a lock without holder
    app = make_app(deploy_to=str(deploy))
    holder = {"by": "bob@desk", "action": "deploy", "token": "tok"}
    assert sh(rel.prepare(paths_for(app), sys.executable, holder)).returncode == 0
    assert unlock(LocalRemote(), app) == (
        f"removed the lock on {deploy} held by bob@desk (deploy) since ?")
    assert not (deploy / ".lock").exists()
    assert unlock(LocalRemote(), app) == f"no lock on {deploy}"
    (deploy / ".lock").mkdir()
    assert unlock(LocalRemote(), app) == (
        f"removed the lock on {deploy} held by an unknown holder (unreadable lock)")
    assert not (deploy / ".lock").exists()
