"""wsgiship.remote: the hints for a changed host key, $AS_APP (how a script acts as the app's
user), and the connection's settings (agent forwarding, host key checks on every gateway hop).
Building a Remote does not connect; a script "sent" here runs locally."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest
from fabric import Config, Connection
from fakes import local_runs

from wsgiship import shell
from wsgiship.config import App, Host
from wsgiship.errors import RemoteError
from wsgiship.remote import Remote, _forget_hint


@pytest.mark.parametrize("host, port, hint", [
    ("web1.example.com", 22, "ssh-keygen -R web1.example.com"),
    ("10.0.0.1", 22, "ssh-keygen -R 10.0.0.1"),
    ("web1.example.com", 2222, "ssh-keygen -R '[web1.example.com]:2222'"),
    ("10.0.0.1", 2200, "ssh-keygen -R '[10.0.0.1]:2200'"),
])
def test_forget_hint_names_the_host_as_known_hosts_does(host: str, port: int, hint: str) -> None:
    # known_hosts keys port 22 by the plain name, any other port as [host]:port
    assert _forget_hint(host, port) == hint


def remote(make_app: Callable[..., App], user: str, *, password: str | None = None,
           config: Config | None = None, **host: object) -> Remote:
    """A Remote for 192.0.2.1 as `user` (never connected)."""
    if password:
        config = Config(overrides={"sudo": {"password": password}})
    return Remote(Host("web1", "192.0.2.1", make_app(), user=user, **host), config)  # type: ignore[arg-type]


@pytest.mark.parametrize("user, app_user, as_root, prefix", [
    ("deploy", "web", False, "sudo -n -u web --"),  # may act as the app, not as root
    ("deploy", "deploy", False, ""),                # the app runs as the login user
    ("deploy", "web", True, "runuser -u web --"),   # the script runs as root
    ("root", "web", True, "runuser -u web --"),
    ("root", "root", True, ""),
    ("deploy", "web x", False, "sudo -n -u 'web x' --"),
])
def test_as_app_prefix(make_app: Callable[..., App], user: str, app_user: str, as_root: bool,
                       prefix: str) -> None:
    assert remote(make_app, user).as_app_prefix(app_user, as_root) == prefix


SHOW = shell.script(['echo "[$AS_APP]"'])


@pytest.mark.parametrize("user, password, kwargs, shown, how", [
    ("deploy", None, {}, "[sudo -n -u web --]", "run"),
    ("deploy", None, {"priv": True}, "[sudo -n -u web --]", "run"),  # $SUDO per command
    ("deploy", "secret", {"priv": True}, "[runuser -u web --]", "sudo"),  # all of it as root
    # not privileged, but as the app: `sudo -n -u web` would need the password too
    ("deploy", "secret", {}, "[runuser -u web --]", "sudo"),
    ("deploy", None, {"root": True}, "[runuser -u web --]", "sudo"),
    ("root", None, {}, "[runuser -u web --]", "run"),
    ("root", None, {"priv": True}, "[runuser -u web --]", "run"),
])
def test_run_sets_as_app_for_how_the_script_runs(make_app: Callable[..., App],
                                                 monkeypatch: pytest.MonkeyPatch, sh, user: str,
                                                 password: str | None, kwargs: dict[str, bool],
                                                 shown: str, how: str) -> None:
    r = remote(make_app, user, password=password)
    seen = local_runs(r, monkeypatch, sh)
    assert r.run(SHOW, app_user="web", **kwargs).stdout == shown + "\n"
    assert seen == [how]


def test_run_sets_as_app_only_when_asked(make_app: Callable[..., App],
                                         monkeypatch: pytest.MonkeyPatch, sh) -> None:
    r = remote(make_app, "deploy")
    local_runs(r, monkeypatch, sh)
    assert r.run(SHOW, app_user="deploy").stdout == "[]\n"  # the login is the app's user
    assert not r.run(SHOW, check=False).ok  # no app_user: no $AS_APP at all (set -u)


@pytest.mark.parametrize("forward", [False, True])
def test_agent_forwarding_is_the_hosts_setting_whatever_ssh_config_says(
        make_app: Callable[..., App], forward: bool) -> None:
    for ssh_config in ("", "Host *\n  ForwardAgent yes\n", "Host *\n  ForwardAgent no\n"):
        config = Config(ssh_config=paramiko.SSHConfig.from_text(ssh_config))
        r = remote(make_app, "deploy", config=config, forward_agent=forward)
        assert r.conn.forward_agent is forward


def test_forward_agent_defaults_to_off(make_app: Callable[..., App]) -> None:
    config = Config(ssh_config=paramiko.SSHConfig.from_text("Host *\n  ForwardAgent yes\n"))
    assert Host("web1", "h", make_app()).forward_agent is False
    assert Remote(Host("web1", "192.0.2.1", make_app()), config).conn.forward_agent is False


def test_every_gateway_hop_checks_host_keys(make_app: Callable[..., App], tmp_path: Path) -> None:
    # Fabric accepts any host key, its ProxyJump gateways' too: every hop must be verified
    key = paramiko.RSAKey.generate(1024)
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{h} {key.get_name()} {key.get_base64()}\n"
                             for h in ("192.0.2.1", "gw1.example", "[gw2.example]:2200")))
    config = Config(ssh_config=paramiko.SSHConfig.from_text(
        "Host 192.0.2.1\n  ProxyJump gw1.example,jump@gw2.example:2200\n"))
    r = remote(make_app, "deploy", config=config, known_hosts=known)
    hops: list[Connection] = []
    hop: object = r.conn
    while isinstance(hop, Connection):
        hops.append(hop)
        hop = hop.gateway
    assert [h.host for h in hops] == ["192.0.2.1", "gw1.example", "gw2.example"]
    for h, name in zip(hops, ("192.0.2.1", "gw1.example", "[gw2.example]:2200"), strict=True):
        assert isinstance(h.client._policy, paramiko.RejectPolicy), h
        assert h.client.get_host_keys().lookup(name) is not None, h


@pytest.mark.parametrize("named", [True, False])
def test_a_named_known_hosts_replaces_the_users(make_app: Callable[..., App], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 named: bool) -> None:
    # a stale ~/.ssh/known_hosts entry (an old test server on the same port) must not
    # override the file hosts.yaml names for the host, as with OpenSSH's UserKnownHostsFile
    stale, pinned = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:2222 {stale.get_name()} {stale.get_base64()}\n")
    monkeypatch.setenv("HOME", str(home))
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {pinned.get_name()} {pinned.get_base64()}\n")
    r = remote(make_app, "deploy", known_hosts=known if named else None)
    client = r.conn.client
    keys = {**client.get_host_keys(), **client._system_host_keys}
    got = keys["[127.0.0.1]:2222"]["ssh-rsa"]
    assert got.get_base64() == (pinned if named else stale).get_base64()


# --- a full disk named in the error ---


FULL = shell.script(["printf x > /dev/full"])  # ENOSPC for real: bash says "No space left on device"


@pytest.mark.parametrize("body, kwargs, message", [
    (FULL, {"what": "unpack"}, "unpack failed (exit 1) (disk full on the server: free some space)"),
    (FULL, {}, "remote command failed (exit 1) (disk full on the server: free some space)"),
    # on stdout, as pip's or tar's output may be
    (shell.script(["echo 'OSError: [Errno 28] No space left on device'", "exit 2"]),
     {"what": "venv"}, "venv failed (exit 2) (disk full on the server: free some space)"),
    (shell.script(["echo 'tar: app.py: Cannot write: No space left on device' >&2", "exit 2"]),
     {"what": "unpack", "priv": True}, "unpack failed (exit 2) (disk full on the server: free"
                                       " some space)"),
    # any other failure: no word about the disk
    (shell.script(["echo 'Permission denied' >&2", "exit 1"]), {"what": "unpack"},
     "unpack failed (exit 1)"),
    (shell.script(["echo 'no space left' >&2", "exit 1"]), {"what": "unpack"},
     "unpack failed (exit 1)"),
])
def test_a_full_disk_is_named_in_the_error(make_app: Callable[..., App],
                                           monkeypatch: pytest.MonkeyPatch, sh, body: str,
                                           kwargs: dict[str, object], message: str) -> None:
    r = remote(make_app, "deploy")
    local_runs(r, monkeypatch, sh)
    with pytest.raises(RemoteError) as info:
        r.run(body, **kwargs)  # type: ignore[arg-type]
    assert info.value.message == message
    assert info.value.host == "web1"
    assert info.value.detail  # the output that says so is shown


def test_a_full_disk_without_check_is_the_callers_business(make_app: Callable[..., App],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           sh) -> None:
    r = remote(make_app, "deploy")
    local_runs(r, monkeypatch, sh)
    res = r.run(FULL, check=False)
    assert res.code == 1 and "No space left on device" in res.stderr
