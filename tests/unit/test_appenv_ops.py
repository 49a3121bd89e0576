"""wsgiship.ops.shared (what the server's answers become: the listing's facts and notes, the
errors of a refused write, the edit's line) and Remote.feed (stream.fed: the script as Remote.run
would send it, its data on stdin after the marker, sudo's password first when whole-script
sudo is used), with a stand-in channel that runs the script here."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fabric import Config

from wsgiship import output
from wsgiship.commands import shared as cmds
from wsgiship.config import App, Host
from wsgiship.errors import RemoteError, WsgishipError
from wsgiship.ops import shared
from wsgiship.remote import Remote, Result, stream

SECRET = "tok-77c1"


def facts_of(*events: dict) -> shared.EnvFacts:
    return shared.parse_facts("\n".join(json.dumps(e) for e in events) + "\nnoise\n")


def test_the_facts_are_names_and_lengths() -> None:
    f = facts_of({"file": "shared", "state": "present"}, {"entry": "shared", "key": "A", "length": 3},
                 {"file": "deployed", "state": "present"},
                 {"entry": "deployed", "key": "G", "length": 2}, {"linked": True})
    assert (f.shared, f.deployed, f.linked) == ([("A", 3)], {"G": 2}, True)
    # nothing deployed: nothing to compare with
    f = facts_of({"file": "shared", "state": "missing"}, {"file": "deployed", "state": "missing"},
                 {"linked": False})
    assert (f.shared, f.deployed, f.states["shared"]) == ([], None, "missing")


@pytest.mark.parametrize("files, events, note", [
    ([], [], "app.shared_files does not list .env"),
    ([".env"], [{"file": "shared", "state": "missing"}], "fab setup -H web1 creates it"),
    ([".env"], [{"file": "shared", "state": "refused", "why": "refusing: shared/.env is a "
                 "symbolic link on the server"}], "refusing: shared/.env is a symbolic link"),
    ([".env"], [{"file": "shared", "state": "present"}, {"file": "deployed", "state": "present"},
                {"linked": False}], "the live release does not read shared/.env"),
    ([".env"], [{"file": "shared", "state": "present"}, {"linked": True}], None),
])
def test_the_notes_say_why_the_shared_env_is_not_read(make_app: Callable[..., App], files,
                                                      events, note) -> None:
    notes = shared.env_notes(make_app(shared_files=files), facts_of(*events), "web1")
    assert notes == ([] if note is None else [notes[0]]) and (note is None or note in notes[0])


@pytest.fixture
def remote(make_app: Callable[..., App]) -> Callable[..., Remote]:
    def make(user: str = "deploy", password: str | None = None) -> Remote:
        config = Config(overrides={"sudo": {"password": password}}) if password else None
        return Remote(Host("web1", "192.0.2.1", make_app(app_user="web"), user=user), config)
    return make


@pytest.mark.parametrize("code, stderr, words", [
    (cmds.CANNOT_CREATE, "sudo: a password is required\n",
     "shared/x.json is not on web1, and deploy may not create a file for the app's user web: "
     "list it in app.shared_files and run fab setup -H web1"),
    (cmds.NO_FILE, "", "the app's user web may not create it there"),
    (cmds.REFUSED, "refusing: shared/x.json is a symbolic link on the server\n",
     "refusing: shared/x.json is a symbolic link on the server"),
    (1, "python3: No space left on device\n", "disk full"),
])
def test_a_refused_write_is_one_clear_line(remote, code: int, stderr: str, words: str) -> None:
    with pytest.raises(WsgishipError) as err:
        shared._written(remote(), Result(code, f'{{"bytes": 3}} {SECRET}', stderr), "x.json", "web")
    assert words in str(err.value) and SECRET not in str(err.value)


class FakeChan:
    """What stream.fed uses of a channel, running the command here once its stdin is closed."""

    def __init__(self, command: str) -> None:
        self.command, self.sent, self.proc = command, b"", None
        self.fd = os.open(os.devnull, os.O_RDONLY)
        self.closed, self.eof_received = False, True

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def shutdown_write(self) -> None:
        argv, self.raw = shlex.split(self.command), self.sent
        if argv[0] == "sudo":  # whole-script sudo: here the script itself, its stdin as sent
            argv = argv[argv.index("--") + 1:]
            self.sent = self.sent.split(b"\n", 1)[1]  # (sudo reads the password line)
        self.proc = subprocess.run(argv, input=self.sent, capture_output=True, timeout=30)

    def fileno(self) -> int:
        return self.fd

    def exit_status_ready(self) -> bool:
        return self.proc is not None

    def recv_exit_status(self) -> int:
        return self.proc.returncode

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        self.closed = True


class FakeStream(stream.Stream):
    made: list[FakeStream] = []

    def __post_init__(self) -> None:
        password = self.remote.config.sudo.password if self.priv else None
        self.command = (stream.sudo_bash(self.body, with_password=bool(password)) if self.priv
                        else stream.bash(self.body))
        self.chan = FakeChan(self.command)  # type: ignore[assignment]
        if password:  # as Stream does
            self.chan.sendall((password + "\n").encode())
        FakeStream.made.append(self)

    def pump(self) -> tuple[list[str], list[str]]:
        proc = self.chan.proc  # type: ignore[attr-defined]
        if proc is None or getattr(self, "_pumped", False):
            return [], []
        self._pumped = True
        return proc.stdout.decode().splitlines(), proc.stderr.decode().splitlines()

    @property
    def done(self) -> bool:
        return self.chan.proc is not None  # type: ignore[attr-defined]


@pytest.fixture
def fake_streams(monkeypatch: pytest.MonkeyPatch) -> list[FakeStream]:
    FakeStream.made = []
    monkeypatch.setattr(stream, "Stream", FakeStream)
    yield FakeStream.made
    for s in FakeStream.made:
        s.chan.close()


BODY = 'printf "[%s|%s] " "$SUDO" "$AS_APP"; cat'


def test_feed_sends_the_data_on_stdin_after_the_marker(remote, fake_streams) -> None:
    r = remote()
    res = r.feed(BODY, SECRET.encode() + b"\nrest", priv=True, app_user="web")
    assert (res.code, res.stdout) == (0, f"[sudo -n|sudo -n -u web --] {SECRET}\nrest\n")
    [s] = fake_streams
    assert not s.priv and SECRET not in s.command  # never on the command line
    assert s.chan.sent.startswith(stream.FEED_MARK.encode() + b"\n")


def test_feed_with_a_sudo_password_runs_the_whole_script_under_sudo(remote, fake_streams) -> None:
    r = remote(password="pw")
    res = r.feed(BODY, SECRET.encode(), app_user="web")
    assert res.stdout == f"[|runuser -u web --] {SECRET}\n"
    [s] = fake_streams
    assert s.priv and s.command.startswith("sudo -S -p '' -- bash -c") and SECRET not in s.command
    # sudo's password first, then the marker, then the data
    assert s.chan.raw == b"pw\n" + stream.FEED_MARK.encode() + b"\n" + SECRET.encode()
    # as root: no sudo at all, the app reached with runuser
    assert remote("root").feed(BODY, b"x", app_user="web").stdout == "[|runuser -u web --] x\n"


def test_feed_skips_a_password_line_sudo_did_not_read(remote, fake_streams) -> None:
    body = stream._SKIP + 'printf "%s|" "$(cat)"'
    res = subprocess.run(["bash", "-c", body], capture_output=True,
                         input=b"pw-cached-so-unread\n" + stream.FEED_MARK.encode() + b"\ndata")
    assert res.stdout == b"data|"


def test_edit_says_what_changed_by_name(remote, make_app, monkeypatch) -> None:
    r = remote()
    seen: dict[str, object] = {}

    def feed(body: str, data: bytes, **kw: object) -> Result:
        seen.update(body=body, data=data, **kw)
        events = [{"set": "A", "was": "new"}, {"set": "B", "was": "changed"},
                  {"set": "C", "was": "same"}, {"unset": "D", "was": "removed"},
                  {"unset": "E", "was": "absent"}, {"created": False}]
        return Result(0, "".join(json.dumps(e) + "\n" for e in events), "")

    monkeypatch.setattr(r, "feed", feed)
    out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
    s = shared.Session(r, r.host.app, out, "env")
    line = shared.edit_env(s, {"A": SECRET, "B": " b ", "C": "c"}, ["D", "E"])
    assert line == "shared/.env: A set, B changed, C same, D unset, E was not set"
    assert json.loads(seen["data"]) == {"set": [["A", f"A={SECRET}"], ["B", "B=' b '"],
                                                ["C", "C=c"]], "unset": ["D", "E"]}
    assert SECRET not in str(seen["body"]) and seen["priv"] and seen["app_user"] == "web"


def test_a_change_needs_the_shared_env_to_be_a_shared_file(remote) -> None:
    r = remote()
    out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
    with pytest.raises(WsgishipError, match=r"app.shared_files does not list .env.*fab setup"):
        shared.EnvChange(r, r.host.app, out, {"A": "1"}, []).run()


def test_put_reads_the_local_file_first(remote, tmp_path: Path, monkeypatch) -> None:
    r = remote()
    out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
    with pytest.raises(WsgishipError, match="--local .*cannot read it"):
        shared.put_file(r, r.host.app, out, tmp_path / "nope", "x")
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(shared.envvars.MAX_PUT + 1)
    with pytest.raises(WsgishipError, match="up to 64 MiB"):
        shared.put_file(r, r.host.app, out, big, "x")


def test_a_remote_error_keeps_no_stdout(remote) -> None:
    # a failure's detail is the program's stderr only: its stdout is never shown
    with pytest.raises(RemoteError) as err:
        shared._written(remote(), Result(2, SECRET, "boom\n"), "x", "web")
    assert "boom" in str(err.value) and SECRET not in str(err.value)


def test_a_put_file_says_what_releases_see_of_it() -> None:
    app = App(name="shop", source=Path("."), wsgi="shop:app", shared_files=(".env",),
              shared_dirs=("instance",))
    where = shared._where_releases_see  # noqa: SLF001
    assert where(".env", app, "/srv/shop/shared", "web1").startswith(": releases link .env to it")
    assert where("instance/config.py", app, "/srv/shop/shared", "web1").startswith(
        ": every release sees it as instance/config.py (a shared dir)")
    assert "no release links to it" in where("gcp.json", app, "/srv/shop/shared", "web1")
    assert "no release links to it" in where("instancex/a", app, "/srv/shop/shared", "web1")
