"""wsgiship.render: the service manager's config for the app's two uWSGI instances (slots): a
systemd template unit, or two supervisor programs, each running the release its slot link
points to, with that slot's socket."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import NAME, rel

from wsgiship import config, render
from wsgiship.layout import SLOTS, paths_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example() -> config.App:
    inv = config.load(ROOT / "hosts.yaml")
    return inv.host(next(iter(inv.hosts), "web9.example.com")).app


def service(app: config.App, user: str = "web") -> str:
    return render.render(app, NAME, user, "r")[".wsgiship/service"]


# --- the systemd unit ---


def unit_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key] = value
    return out


def test_service_unit(make_app) -> None:
    unit = unit_lines(service(make_app(name="shop", deploy_to="/opt/shop")))
    assert unit["User"] == "web"
    # uWSGI runs in the app user's own group (a worker in www-data would hide its /proc
    # entries from the deploy user); the socket dir is no runtime dir of the unit
    assert "Group" not in unit and "RuntimeDirectory" not in unit
    # a template: instance %i is the slot; it runs the release its slot link points to
    assert unit["ExecStart"] == ("/opt/shop/slots/%i/.venv/bin/uwsgi --ini "
                                 "/opt/shop/slots/%i/.wsgiship/uwsgi.ini")
    assert unit["Environment"] == "WSGISHIP_SLOT=%i"
    assert unit["ConditionPathExists"] == "/opt/shop/slots/%i"  # at boot: only a linked slot
    assert unit["Type"] == "notify"
    # a stop is uWSGI's graceful shutdown (uwsgi.ini); nothing reloads in place
    assert unit["UMask"] == "0027" and unit["KillSignal"] == "SIGTERM"
    assert "ExecReload" not in unit
    assert unit["WantedBy"] == "multi-user.target"


def test_systemd_is_the_default_service_manager(make_app) -> None:
    default = render.render(make_app(), NAME, "deploy", "r")
    assert default == render.render(make_app(service_manager="systemd"), NAME, "deploy", "r")
    assert default[".wsgiship/service"].startswith("# uWSGI for hello, one instance per slot")
    assert "[Service]" in default[".wsgiship/service"]


def test_service_unit_passes_systemd_analyze_verify(example: config.App, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    # as installed: a template unit (verify makes an instance of it)
    unit = tmp_path / Path(paths_for(example).service_file).name
    assert unit.name == "wsgiship-hello@.service"
    unit.write_text(service(example, "deploy"))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path)
    complaints = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    slots = f"{example.deploy_to}/slots/"
    other = [line for line in complaints if not (slots in line and "is not executable" in line)]
    assert other == [], "\n".join(complaints)


# --- the supervisor program ---

# supervisord's own reading of its config: ';' or '#' after whitespace starts a comment
SUPERVISORD = {"inline_comment_prefixes": (";", "#"), "strict": False}


def supervisor_programs(text: str, **how: object) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(**how)  # type: ignore[arg-type]
    parser.read_string(text)
    return {name: dict(parser[name]) for name in parser.sections()}


def test_supervisor_programs(make_app) -> None:
    app = make_app(name="shop", deploy_to="/opt/shop", service_manager="supervisor")
    out = render.render(app, NAME, "web", "r")
    programs = supervisor_programs(out[".wsgiship/service"])
    assert list(programs) == ["program:wsgiship-shop-a", "program:wsgiship-shop-b"]
    for slot in SLOTS:
        link = f"/opt/shop/slots/{slot}"
        assert programs[f"program:wsgiship-shop-{slot}"] == {
            # a slot with no link exits at once, and is not restarted (exit code 0)
            "command": f"/bin/sh -c 'test -e {link} || exit 0; exec {link}/.venv/bin/uwsgi"
                       f" --ini {link}/.wsgiship/uwsgi.ini'",
            "environment": f'WSGISHIP_SLOT="{slot}"',
            "user": "web", "umask": "027", "autostart": "true", "autorestart": "unexpected",
            "exitcodes": "0", "startsecs": "0",
            "stopsignal": "TERM",  # uWSGI's graceful shutdown (uwsgi.ini)
            "stopwaitsecs": "60", "stopasgroup": "true", "killasgroup": "true",
            "stdout_logfile": f"/opt/shop/shared/log/supervisor-{slot}.log",
            # bounded: one 20 MB backup
            "stdout_logfile_maxbytes": "20MB", "stdout_logfile_backups": "1",
            "redirect_stderr": "true",
        }
    # the same files; everything but the service config is what systemd gets
    systemd = render.render(make_app(name="shop", deploy_to="/opt/shop"), NAME, "web", "r")
    assert set(out) == set(systemd)
    assert {k: v for k, v in out.items() if k != ".wsgiship/service"} == {
        k: v for k, v in systemd.items() if k != ".wsgiship/service"}


def test_supervisor_reads_the_programs_whole(make_app) -> None:
    text = service(make_app(name="shop", service_manager="supervisor"))
    # no value is cut short by what supervisord takes for a comment
    assert supervisor_programs(text, **SUPERVISORD) == supervisor_programs(text)
    assert text.startswith("; uWSGI for shop, one program per slot (rendered by wsgiship)")


# --- a slot runs the release its link points to, on its own socket ---

# a stand-in uwsgi: the options of its --ini as uWSGI reads them ($(VAR) from the environment)
FAKE_UWSGI = textwrap.dedent("""\
    import json, os, re, sys
    text = open(sys.argv[sys.argv.index("--ini") + 1]).read()
    opts = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    print(json.dumps({k: re.sub(r"\\$\\((\\w+)\\)", lambda m: os.environ[m[1]], v)
                      for k, v in opts.items()}))
""")


def start_command(text: str, manager: str, slot: str) -> tuple[list[str], dict[str, str], str]:
    """How the manager starts a slot's uWSGI: argv, environment, and the path that must exist
    for it to start (systemd's condition; supervisor's command checks it itself)."""
    if manager == "systemd":
        unit = {k: v.replace("%i", slot) for k, v in unit_lines(text).items()}
        key, _, value = unit["Environment"].partition("=")
        return shlex.split(unit["ExecStart"]), {key: value}, unit["ConditionPathExists"]
    program = supervisor_programs(text, **SUPERVISORD)[f"program:wsgiship-hello-{slot}"]
    key, _, value = program["environment"].partition("=")
    return shlex.split(program["command"]), {key: value.strip('"')}, ""


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_a_slot_runs_the_release_its_link_points_to(tmp_path: Path, make_app,
                                                    manager: str) -> None:
    app = make_app(deploy_to=str(tmp_path / "srv"), service_manager=manager)
    p = paths_for(app)
    for i, slot in enumerate(SLOTS, 1):
        r = Path(p.release(rel(i)))
        for target, text in render.render(app, rel(i), "web", "r").items():
            (r / target).parent.mkdir(parents=True, exist_ok=True)
            (r / target).write_text(text)
        (r / ".venv" / "bin").mkdir(parents=True)
        (r / ".venv" / "bin" / "uwsgi").write_text(f"#!{sys.executable}\n{FAKE_UWSGI}")
        (r / ".venv" / "bin" / "uwsgi").chmod(0o755)
        Path(p.slots).mkdir(exist_ok=True)
        os.symlink(f"../releases/{rel(i)}", p.slot(slot))
    text = (Path(p.release(rel(1))) / ".wsgiship" / "service").read_text()
    for i, slot in enumerate(SLOTS, 1):
        argv, env, condition = start_command(text, manager, slot)
        assert not condition or Path(condition).exists()
        res = subprocess.run(argv, env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        opts = json.loads(res.stdout)
        assert (opts["socket"], opts["master-fifo"]) == (p.slot_socket(slot), p.slot_fifo(slot))
        assert opts["chdir"] == p.release(rel(i))
    # a slot without a link does not start: systemd's condition, supervisor's command exits 0
    os.remove(p.slot("b"))
    argv, env, condition = start_command(text, manager, "b")
    if condition:
        assert not Path(condition).exists()
    else:
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
