"""wsgiship.ops.hooks: the app's hooks run by a real Remote whose SSH `run` executes the script
here, with the fakes on PATH (a deploy user's sudo; the app runs as its own user), and a
Reporter writing to memory.

A hook is named by its point and number (`hook before_switch #1`), never by its command, which
may carry a token: in errors and in step lines."""

from __future__ import annotations

import io
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import as_deploy, calls

from wsgiship import output
from wsgiship.config import App, Host
from wsgiship.errors import RemoteError
from wsgiship.ops.hooks import run_hooks
from wsgiship.ops.session import Session
from wsgiship.remote import Remote

RELEASE = "20250101T000000Z-abc1234"
SECRET = "s3cr3t-t0ken"


class Run:
    """What a hooks run left: the session's output lines and the local runs of SSH commands."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.commands: list[str] = []

    @property
    def lines(self) -> list[str]:
        return self.out.getvalue().decode().splitlines()


@pytest.fixture
def hooks_run(tmp_path: Path, fakebin: Path, make_app: Callable[..., App], sh,
              monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """run_hooks(point) for an app with `hooks`, deployed to tmp_path/srv/app (release RELEASE
    with a venv of this machine's python), as user deploy over a Remote that runs locally;
    what it left in `run` (pass one to see it after an error)."""

    def go(hooks: dict[str, list[object]], point: str, run: Run | None = None) -> Run:
        (tmp_path / "src").mkdir(exist_ok=True)
        app = make_app(hooks=hooks, deploy_to=str(tmp_path / "srv" / "app"),
                       source=str(tmp_path / "src"))
        venv = tmp_path / "srv" / "app" / "venvs" / "k1"
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        if not (venv / "bin" / "python").exists():
            (venv / "bin" / "python").symlink_to(sys.executable)
            release = tmp_path / "srv" / "app" / "releases" / RELEASE
            (release / ".wsgiship").mkdir(parents=True)
            (release / ".venv").symlink_to("../../venvs/k1")
        remote = Remote(Host("web1", "192.0.2.1", app, user="deploy"))
        run = run or Run()

        def local(command: str, **_: object) -> object:
            run.commands.append(command)
            res = sh(shlex.split(command)[2], env=as_deploy(fakebin))
            return type("R", (), {"exited": res.returncode, "stdout": res.stdout,
                                  "stderr": res.stderr})()

        monkeypatch.setattr(remote.conn, "run", local)
        out = output.Reporter("web1", output.Printer(run.out, io.BytesIO()), live=False)
        session = Session(remote=remote, app=app, out=out, action="deploy")
        monkeypatch.chdir(tmp_path)
        run_hooks(session, point, RELEASE, "sha256:abc")
        return run

    return go


def test_remote_hooks_run_in_the_release_as_the_apps_user(hooks_run: Callable[..., Run],
                                                          fakebin: Path, tmp_path: Path) -> None:
    show = ('echo "$WSGISHIP_STAGE $WSGISHIP_RELEASE ${FAKE_LOGIN} $(basename "$PWD")"'
            f' > {tmp_path}/seen-$N')
    run = hooks_run({"before_switch": [f"N=1; {show} # token {SECRET}",
                                       f"N=2; {show}"]}, "before_switch")
    for n in (1, 2):
        assert (tmp_path / f"seen-{n}").read_text() == (
            f"before_switch {RELEASE} wsgiship-hello {RELEASE}\n")
    # through sudo as the app's user, never as root
    ran = [c.split(" -- ")[0] for c in calls(fakebin) if c.startswith("sudo")]
    assert ran == ["sudo -n -u wsgiship-hello"] * 2
    scripts = [shlex.split(c)[2] for c in run.commands]
    assert all(s.startswith("AS_APP='sudo -n -u wsgiship-hello --'\n") for s in scripts)
    assert all("$SUDO" not in s and "SUDO=" not in s for s in scripts)  # not privileged
    # each step line names the hook by number; its command (and its token) are not shown
    assert len(run.lines) == 2
    for n, line in enumerate(run.lines, 1):
        assert line.startswith("[web1] hook before_switch")
        assert line.endswith(f"s  remote #{n} of 2")
    assert SECRET not in "\n".join(run.lines)


def test_a_failing_remote_hook_is_named_by_point_and_number(hooks_run: Callable[..., Run]) -> None:
    run = Run()
    with pytest.raises(RemoteError) as info:
        hooks_run({"after_switch": ["true", f"echo out; exit 3; curl -H 'Authorization: {SECRET}'"]},
                  "after_switch", run)
    err = info.value
    assert err.message == "hook after_switch #2 failed (exit 3)"
    assert err.host == "web1"
    assert "out" in err.detail.splitlines()
    assert SECRET not in str(err)
    assert run.lines[0].endswith("s  remote #1 of 2") and run.lines[1].endswith("s  FAILED")
    assert SECRET not in "\n".join(run.lines)


def test_local_hooks_run_in_the_source_and_fail_named_by_number(hooks_run: Callable[..., Run],
                                                                tmp_path: Path) -> None:
    ok = f'echo "$WSGISHIP_STAGE $WSGISHIP_HOST $(basename "$PWD")" > {tmp_path}/local-seen'
    run = Run()
    with pytest.raises(RemoteError) as info:
        hooks_run({"before_switch": [{"local": ok}, {"local": f"echo {SECRET} >&2; exit 5"}]},
                  "before_switch", run)
    assert (tmp_path / "local-seen").read_text() == "before_switch web1 src\n"
    err = info.value
    assert err.message == "local hook before_switch #2 failed (exit 5)"
    assert SECRET not in err.message
    assert err.detail == SECRET  # what the hook itself printed is shown, as it is its output
    assert run.lines[0].endswith("s  local #1 of 2") and run.lines[1].endswith("s  FAILED")


def test_no_hooks_at_the_point_run_nothing(hooks_run: Callable[..., Run], fakebin: Path) -> None:
    run = hooks_run({"after_switch": ["exit 1"]}, "before_switch")
    assert run.lines == [] and run.commands == [] and calls(fakebin) == []
