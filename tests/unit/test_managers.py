"""wsgiship.managers: the registry, each manager's files, packages and slot instances, that the
root commands of its snippets carry $SUDO (and are exactly the ones the sudo rules grant), and
what its snippets do, run against logging stand-ins of systemctl and supervisorctl."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakes import HOSTILE_TOUCH, PWNED, add_fakes, run_script
from script_commands import commands

from wsgiship import layout, managers, privilege
from wsgiship.managers import ServiceManager, Supervisor, Systemd
from wsgiship.shell import cmd, q

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SLOT_SNIPPETS = ("is_active", "start", "stop", "stop_later", "main_pid", "why_not_started")
DEPLOY_SNIPPETS = (*SLOT_SNIPPETS, "apply_config", "legacy_active", "legacy_stop")
SETUP_SNIPPETS = ("setup_enable", "setup_apply")
# which of a manager's commands need root: systemctl by verb, supervisorctl always (its socket
# is root's), journalctl never (the deploy user reads the journal as a member of adm)
ROOT_VERBS = {"systemctl": {"start", "stop", "disable", "daemon-reload", "enable"},
              "supervisorctl": {"start", "stop", "status", "pid", "update", "reread", "tail"},
              "journalctl": set()}
READ_VERBS = {"systemctl": {"is-active", "show", "status"}, "supervisorctl": set(),
              "journalctl": {"-u"}}


def test_names_list_the_managers() -> None:
    assert managers.names() == ("systemd", "supervisor")
    assert managers.MANAGERS == {"systemd": Systemd, "supervisor": Supervisor}


@pytest.mark.parametrize("kind", ["upstart", "", "Systemd"])
def test_get_an_unknown_manager(kind: str) -> None:
    with pytest.raises(ValueError) as info:
        managers.get(kind, "wsgiship-shop")
    assert str(info.value) == f"unknown service manager {kind!r} (known: systemd, supervisor)"


@pytest.mark.parametrize("kind, cls, service_file, template, packages, instances", [
    ("systemd", Systemd, "/etc/systemd/system/wsgiship-shop@.service", "systemd.service.j2", (),
     ("wsgiship-shop@a.service", "wsgiship-shop@b.service")),
    ("supervisor", Supervisor, "/etc/supervisor/conf.d/wsgiship-shop.conf", "supervisor.conf.j2",
     ("supervisor",), ("wsgiship-shop-a", "wsgiship-shop-b")),
])
def test_each_manager(kind: str, cls: type[ServiceManager], service_file: str, template: str,
                      packages: tuple[str, ...], instances: tuple[str, ...]) -> None:
    m = managers.get(kind, "wsgiship-shop")
    assert type(m) is cls and m.name == kind and m.service == "wsgiship-shop"
    assert m.service_file("wsgiship-shop") == service_file
    assert (m.template, m.packages) == (template, packages)
    assert (TEMPLATES / template).is_file()
    # one uWSGI instance per slot, under one config file (a template unit, or two programs)
    assert m.slots == managers.SLOTS == layout.SLOTS == ("a", "b")
    assert tuple(map(m.instance, m.slots)) == instances


def snippets(m: ServiceManager, names: tuple[str, ...]) -> tuple[dict[str, str], list[privilege.RootCommand]]:
    """The snippets' text (a slot's as `name(slot)`), and the root commands they put in."""
    texts = {}
    with privilege.recording() as seen:
        for name in names:
            if name in SLOT_SNIPPETS:
                texts.update({f"{name}({s})": getattr(m, name)(s) for s in m.slots})
            else:
                texts[name] = getattr(m, name)
    return texts, seen


@pytest.mark.parametrize("kind", managers.names())
@pytest.mark.parametrize("snippet", DEPLOY_SNIPPETS)
def test_deploy_snippets_run_exactly_the_root_commands_with_sudo(kind: str, snippet: str) -> None:
    m = managers.get(kind, "wsgiship-shop")
    texts, seen = snippets(m, (snippet,))
    text = "\n".join(texts.values())
    for c in seen:
        assert "$SUDO " + cmd(*c.argv) in text, (c, text)
    for name, one in texts.items():
        found = [(sudo, word, args) for sudo, word, args in commands(one) if word in ROOT_VERBS]
        assert found, one  # every snippet drives its manager
        for sudo, word, args in found:
            verb = args.split()[0]
            assert verb in ROOT_VERBS[word] | READ_VERBS[word], (word, args)
            assert sudo == (verb in ROOT_VERBS[word]), f"{name}: {word} {args}"


@pytest.mark.parametrize("kind", managers.names())
def test_the_granted_commands_are_the_deploys_root_commands(kind: str) -> None:
    m = managers.get(kind, "wsgiship-shop")
    _, seen = snippets(m, DEPLOY_SNIPPETS)
    granted = m.granted()
    assert all(c.granted for c in granted)
    # what a restricted deploy user may run is what the snippets run with sudo, but for the
    # commands that need root itself (systemd's daemon-reload and enable, done by fab setup)
    assert {c for c in seen if c.granted} == set(granted)
    assert len(set(granted)) == len(granted)
    for c in granted:
        assert c.rule().split()[0] == privilege.FULL_PATHS[c.argv[0]]


def test_systemd_leaves_the_unit_changes_to_root() -> None:
    _, seen = snippets(managers.get("systemd", "wsgiship-shop"), ("apply_config",))
    assert seen == [privilege.RootCommand(("systemctl", "daemon-reload"), granted=False),
                    privilege.RootCommand(("systemctl", "enable", "-q", "wsgiship-shop@a.service",
                                           "wsgiship-shop@b.service"), granted=False)]


@pytest.mark.parametrize("kind", managers.names())
def test_setup_snippets_run_as_root_without_sudo(kind: str) -> None:
    texts, seen = snippets(managers.get(kind, "wsgiship-shop"), SETUP_SNIPPETS)
    assert seen == []
    for text in texts.values():
        assert "$SUDO" not in text


# --- the snippets run, against stand-ins that note each call's arguments ---

# each call's argv, one line, arguments separated by \x1f; START_RC is what `start` returns,
# STOP_SLEEP how long `stop` takes, ACTIVE whether the instance runs, STOPPING how many status
# calls still say STOPPING
STANDINS = {
    name: ('printf "%s\\x1f" "$(basename "$0")" "$@" >> "$ARGV"; echo >> "$ARGV"\n'
           'case "$1" in\n'
           '  start) exit "${START_RC:-0}" ;;\n'
           '  stop) sleep "${STOP_SLEEP:-0}" ;;\n'
           '  is-active) [ "${ACTIVE:-1}" = 1 ] ;;\n'
           '  status) n=$(cat "$ARGV.stopping" 2>/dev/null || echo 0)\n'
           '    if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$ARGV.stopping"; echo "$2 STOPPING"\n'
           '    elif [ "${ACTIVE:-1}" = 1 ]; then echo "$2 RUNNING"; else echo "$2 EXITED"; fi ;;\n'
           'esac\n')
    for name in ("systemctl", "supervisorctl", "journalctl")}


def run_snippet(tmp_path: Path, text: str, **env: str) -> tuple[int, list[list[str]]]:
    """Run a snippet as root with the stand-ins: its exit code, and the calls' argv."""
    bin_ = tmp_path / "bin"
    if not bin_.exists():
        bin_.mkdir()
        add_fakes(bin_, STANDINS)
    argv = tmp_path / "argv"
    argv.unlink(missing_ok=True)
    res = run_script(f"SUDO=\n{text}", env={"PATH": f"{bin_}:/usr/bin:/bin", "ARGV": str(argv),
                                            **env})
    return res.returncode, read_argv(tmp_path)


def read_argv(tmp_path: Path) -> list[list[str]]:
    argv = tmp_path / "argv"
    lines = argv.read_text().splitlines() if argv.exists() else []
    return [line.split("\x1f")[:-1] for line in lines]


@pytest.mark.parametrize("kind", managers.names())
@pytest.mark.parametrize("snippet", DEPLOY_SNIPPETS + SETUP_SNIPPETS)
def test_snippets_pass_the_instance_names_as_single_arguments(tmp_path: Path, kind: str,
                                                              snippet: str) -> None:
    service = "svc" + HOSTILE_TOUCH
    m = managers.get(kind, service)
    texts, _ = snippets(m, (snippet,))
    legacy = service + ".service" if kind == "systemd" else service
    both = {m.instance(s) for s in m.slots}
    for name, text in texts.items():
        slot = name.partition("(")[2].rstrip(")")
        expected = ({m.instance(slot)} if slot else {legacy} if name.startswith("legacy")
                    # systemd enables both instances; supervisor only rereads its config
                    else both if kind == "systemd" and name in ("apply_config", "setup_apply")
                    else set())
        rc, done = run_snippet(tmp_path, text)
        for _ in range(50):  # (a stop in the background logs a moment later)
            named = {a for argv in done for a in argv[1:] if a.startswith("svc")}
            if named == expected:
                break
            time.sleep(0.02)
            done = read_argv(tmp_path)
        assert named == expected, (name, rc)
    assert not PWNED.exists()


def test_systemd_start_fails_when_the_instance_did_not_come_up(tmp_path: Path) -> None:
    # a unit whose condition failed (no slot link) "starts" and does nothing
    start = managers.get("systemd", "wsgiship-app").start("b")
    assert run_snippet(tmp_path, start)[0] == 0
    rc, done = run_snippet(tmp_path, start, ACTIVE="0")
    assert rc != 0
    assert done == [["systemctl", "start", "wsgiship-app@b.service"],
                    ["systemctl", "is-active", "-q", "wsgiship-app@b.service"]]
    assert run_snippet(tmp_path, start, START_RC="1")[0] != 0


def test_supervisor_start_waits_out_a_stop_and_judges_by_the_status(tmp_path: Path) -> None:
    start = managers.get("supervisor", "wsgiship-app").start("a")
    (tmp_path / "argv.stopping").write_text("2")  # a graceful stop still under way
    rc, done = run_snippet(tmp_path, start, START_RC="7")  # "already started" is no failure
    assert rc == 0
    status = ["supervisorctl", "status", "wsgiship-app-a"]
    assert done == [status, status, status, ["supervisorctl", "reread"],
                    ["supervisorctl", "update", "wsgiship-app-a"],
                    ["supervisorctl", "start", "wsgiship-app-a"], status]
    assert run_snippet(tmp_path, start, ACTIVE="0")[0] != 0  # spawned, but not RUNNING


@pytest.mark.parametrize("kind", managers.names())
def test_why_not_started_speaks_on_stderr_and_never_fails(tmp_path: Path, kind: str) -> None:
    add_fakes(tmp_path, {name: f'echo "{name}: why"; exit 3\n'
                         for name in ("systemctl", "supervisorctl", "journalctl")})
    text = managers.get(kind, "wsgiship-app").why_not_started("a")
    res = run_script(f"SUDO=\n{text}\necho after", env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert (res.returncode, res.stdout) == (0, "after\n")
    words = ["systemctl: why", "journalctl: why"] if kind == "systemd" else ["supervisorctl: why"]
    assert res.stderr.splitlines() == words


# a sudo that notes its argv as the stand-ins do: `-l CMD` answers $SUDO_LIST_RC (whether the
# rules allow CMD), anything else it runs
SUDO_STANDIN = ('printf "%s\\x1f" sudo "$@" >> "$ARGV"; echo >> "$ARGV"\n'
                '[ "$1" = -n ] && shift\n'
                'if [ "$1" = -l ]; then exit "${SUDO_LIST_RC:-0}"; fi\n'
                'exec "$@"\n')


def test_systemd_stop_later_asks_for_the_stop_without_waiting(tmp_path: Path) -> None:
    stop = managers.get("systemd", "wsgiship-app").stop_later("b")
    began = time.monotonic()
    assert run_snippet(tmp_path, stop, STOP_SLEEP="0")[1] == [
        ["systemctl", "stop", "--no-block", "wsgiship-app@b.service"]]
    assert time.monotonic() - began < 2


@pytest.mark.parametrize("sudo, allowed", [("sudo -n", True), ("sudo -n", False), ("", True)])
def test_supervisor_stop_later_asks_sudo_first_then_stops_in_the_background(
        tmp_path: Path, sudo: str, allowed: bool) -> None:
    # supervisorctl stop waits until the program is gone: in the background, where sudo's
    # refusal would go unseen; so sudo is asked first (as root: nothing to ask)
    m = managers.get("supervisor", "svc" + HOSTILE_TOUCH)
    inst = m.instance("b")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    add_fakes(bin_, {**STANDINS, "sudo": SUDO_STANDIN})
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "ARGV": str(tmp_path / "argv"), "STOP_SLEEP": "3",
           "SUDO_LIST_RC": "0" if allowed else "1"}
    began = time.monotonic()
    res = run_script(f"SUDO={q(sudo)}\n{m.stop_later('b')}\necho after", env=env)
    asked = [["sudo", "-n", "-l", "/usr/bin/supervisorctl", "stop", inst]] if sudo else []
    if not allowed:
        assert (res.returncode, res.stdout) == (1, "")
        assert res.stderr == f"sudo does not allow: supervisorctl stop {inst} (run fab setup)\n"
        assert read_argv(tmp_path) == asked  # nothing stopped
        return
    assert (res.returncode, res.stdout) == (0, "after\n"), res.stderr
    assert time.monotonic() - began < 2  # (the stop takes 3 s)
    stop = ["supervisorctl", "stop", inst]
    stopped = [*asked, *([["sudo", "-n", *stop]] if sudo else []), stop]
    for _ in range(100):
        if read_argv(tmp_path) == stopped:
            break
        time.sleep(0.02)
    assert read_argv(tmp_path) == stopped
    assert not PWNED.exists()
