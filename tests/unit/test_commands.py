"""wsgiship.commands.{release,venv,services} and wsgiship.shell.

The builders are pure functions returning bash scripts. Besides checking their text, the tests
run the scripts for real on a deploy tree in tmp_path (Paths accepts any deploy_to), with fake
sudo/systemctl/supervisorctl/nginx/... commands on PATH where the real ones would touch the
machine. Privileged scripts get $SUDO first, as Remote.run(priv=True) sends them.
"""

from __future__ import annotations

import http.server
import inspect
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wsgiship import shell, source
from wsgiship.commands import checks, health, nginx, release, services, venv
from wsgiship.layout import Paths
from wsgiship.render import render

HOSTILE = "x'; rm -rf / #"
NAME = "20250101T000000Z-abc1234"


def line_with(script: str, needle: str) -> str:
    lines = [line for line in script.splitlines() if needle in line]
    assert len(lines) == 1, f"expected one line with {needle!r} in:\n{script}"
    return lines[0]


def body_lines(text: str) -> list[str]:
    """The script's own lines, after the common header."""
    return text.removeprefix(shell.HEADER).splitlines()


# --- shell.py ---


def test_q_quotes_for_posix_shells() -> None:
    assert shell.q("plain-word_1.2/x") == "plain-word_1.2/x"
    assert shell.q("") == "''"
    assert shell.q(42) == "42"
    assert shlex.split(shell.q(HOSTILE)) == [HOSTILE]
    assert shlex.split(shell.q("a\nb $(id) `id` \"q\"")) == ["a\nb $(id) `id` \"q\""]


def test_cmd_quotes_every_argument() -> None:
    line = shell.cmd("install", "-d", HOSTILE, "a b", 7)
    assert shlex.split(line) == ["install", "-d", HOSTILE, "a b", "7"]


def test_script_stops_at_the_first_failure_and_drops_empty_lines() -> None:
    text = shell.script(["echo a", "", "echo b"])
    assert text == shell.HEADER + "echo a\necho b\n"
    assert shell.HEADER.startswith("set -euo pipefail\n")


def test_script_really_stops_at_the_first_failure(sh) -> None:
    res = sh(shell.script(["echo one", "false", "echo two"]))
    assert res.returncode == 1
    assert res.stdout == "one\n"
    res = sh(shell.script(["false | true", "echo after"]))  # pipefail
    assert res.returncode == 1 and res.stdout == ""
    res = sh(shell.script(["echo $UNSET_VARIABLE_X"]))  # nounset
    assert res.returncode != 0 and "UNSET_VARIABLE_X" in res.stderr


def test_bash_is_one_quoted_command_line(sh) -> None:
    body = shell.script([f"printf '%s\\n' {shell.q(HOSTILE)}", "echo $0"])
    argv = shlex.split(shell.bash(body))
    assert argv == ["bash", "-c", body]
    res = sh(body)  # through /bin/sh, as a login shell would run it
    assert res.returncode == 0
    assert res.stdout.splitlines() == [HOSTILE, "bash"]


# --- purity ---


def all_builders(p: Paths) -> list[str]:
    return [
        release.prepare(p, "python3", {"by": "me", "token": "t"}),
        release.layout(p, "deploy"),
        release.unlock(p, "t"),
        release.unpack(p, NAME, "/tmp/u.tgz", (".env",), ("media",)),
        release.mark_failed(p, NAME, "boom"),
        release.switch(p, NAME),
        release.prune(p, 5, NAME),
        release.append_log(p, {"release": NAME}),
        venv.ensure(p, NAME, "k" * 16, "python3"),
        checks.import_check(p, NAME),
        checks.nginx_check(p, NAME),
        checks.unit_check(p, NAME, "web1"),
        services.install(p, "deploy", "www-data", ("media",)),
        services.reload_uwsgi(p, NAME, "older", 2, as_other=False),
        services.reload_uwsgi(p, NAME, "older", 2, as_other=True),
        nginx.reload_nginx(p, NAME, "older"),
        release.force_unlock(p),
        health.health_check(80, "localhost", "/", 200, NAME, 60),
        services.error_log_tail(p),
    ]


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_builders_are_pure(tmp_path: Path, manager: str) -> None:
    p = Paths(str(tmp_path / "d"), "app", manager)
    first = all_builders(p)
    assert all_builders(p) == first
    assert list(tmp_path.iterdir()) == []  # building touched nothing
    for text in first:
        assert text.startswith(shell.HEADER) and text.endswith("\n")
        assert sh_syntax_ok(text)
    # the service manager shows in the service scripts and nowhere else
    for line in "\n".join(first).splitlines():
        if manager == "systemd":
            assert "supervisorctl" not in line
        else:
            assert not ("systemctl" in line and "wsgiship-app" in line), line
            assert "journalctl" not in line


def sh_syntax_ok(text: str) -> bool:
    return subprocess.run(["bash", "-n", "-c", text], capture_output=True).returncode == 0


# --- hostile values stay single tokens ---


def test_switch_quotes_the_release() -> None:
    p = Paths("/srv/app", "app")
    text = release.switch(p, HOSTILE)
    assert shlex.split(line_with(text, "ln -sfn")) == [
        "ln", "-sfn", "releases/" + HOSTILE, "/srv/app/.current.tmp"]
    assert shlex.split(line_with(text, "test -f")) == [
        "test", "-f", f"/srv/app/releases/{HOSTILE}/.wsgiship/uwsgi.ini"]


def test_paths_with_hostile_deploy_to_are_quoted() -> None:
    p = Paths("/srv/a b" + HOSTILE, "app")
    text = release.prune(p, 5, HOSTILE)
    assert shlex.split(body_lines(text)[0]) == ["cd", p.releases]
    assert shlex.split(line_with(text, "keep=")) == [
        "keep=5;", f"current={HOSTILE};", "good=0;", "failed=0;", "after_current=0"]
    assert shlex.split(line_with(release.prepare(p, "python3", {}), "D="))[0] == "D=" + p.deploy_to


def test_unpack_quotes_release_upload_and_shared_names() -> None:
    p = Paths("/srv/app", "app")
    text = release.unpack(p, HOSTILE, "/srv/app/.up " + HOSTILE, (), ())
    assert shlex.split(line_with(text, "R=")) == [f"R=/srv/app/releases/{HOSTILE}"]
    assert shlex.split(line_with(text, "rm -f")) == ["rm", "-f", "/srv/app/.up " + HOSTILE]


def test_mark_failed_and_log_quote_free_text() -> None:
    p = Paths("/srv/app", "app")
    text = release.mark_failed(p, NAME, HOSTILE)
    assert HOSTILE in shlex.split(line_with(text, "FAILED"))
    entry = {"reason": HOSTILE, "release": NAME}
    argv = shlex.split(line_with(release.append_log(p, entry), "printf"))
    assert argv[:3] == ["printf", "%s\\n", json.dumps(entry, sort_keys=True)]


def test_prepare_quotes_holder_and_python() -> None:
    p = Paths("/srv/app", "app")
    holder = {"by": HOSTILE, "token": "abc"}
    text = release.prepare(p, "python3" + HOSTILE, holder)
    argv = shlex.split(line_with(text, "printf"))
    assert argv[2] == json.dumps(holder, sort_keys=True)
    assert shlex.split(line_with(text, "command -v").split(">")[0]) == [
        "command", "-v", "python3" + HOSTILE]


def test_unlock_quotes_the_token() -> None:
    text = release.unlock(Paths("/srv/app", "app"), HOSTILE)
    assert shlex.split(body_lines(text)[0])[:5] == ["if", "grep", "-qF", HOSTILE, "/srv/app/.lock/holder"]


def test_layout_quotes_owner() -> None:
    p = Paths("/srv/app", "app")
    text = release.layout(p, HOSTILE)
    install = [line for line in text.splitlines() if line.startswith("$SUDO install")]
    assert len(install) == 6
    for line in install:
        argv = shlex.split(line.removeprefix("$SUDO "))
        assert argv[:8] == ["install", "-d", "-o", HOSTILE, "-g", "www-data", "-m", "2750"]
    dirs = [shlex.split(line)[-1] for line in install]
    assert dirs == ["/srv/app", "/srv/app/releases", "/srv/app/shared", "/srv/app/venvs",
                    "/srv/app/shared/log", "/srv/app/shared/run"]
    assert dirs == p.dirs


def test_venv_ensure_quotes_python_and_key() -> None:
    text = venv.ensure(Paths("/srv/app", "app"), NAME, HOSTILE, "py " + HOSTILE)
    assert shlex.split(body_lines(text)[0])[0] == f"V=/srv/app/venvs/{HOSTILE};"
    argv = shlex.split(line_with(text, " -m venv "))
    build = shlex.split(argv[argv.index("-c") + 1])  # the build runs in its own bash -c
    assert build[build.index("-m") - 1] == "py " + HOSTILE
    assert shlex.split(line_with(text, "ln -sfn"))[2] == "../../venvs/" + HOSTILE


def test_health_check_passes_each_value_as_one_argument() -> None:
    text = health.health_check(8080, "example.com", "/x?a=1&b=" + HOSTILE, 204, HOSTILE, 9)
    argv = shlex.split(text.removeprefix(shell.HEADER))
    assert argv[0:2] == ["python3", "-c"]
    assert argv[2] == health.HEALTH_PROBE
    assert argv[3:] == ["8080", "example.com", "/x?a=1&b=" + HOSTILE, "204", HOSTILE, "9"]


def test_error_log_tail_forces_an_integer() -> None:
    text = services.error_log_tail(Paths("/srv/app", "app"), 7)
    assert shlex.split(body_lines(text)[0])[:4] == ["tail", "-n", "7", "/srv/app/shared/log/uwsgi.log"]
    with pytest.raises(ValueError):
        services.error_log_tail(Paths("/srv/app", "app"), "5; rm -rf /")  # type: ignore[arg-type]


# --- services: text ---


def test_install_chowns_shared_only_for_a_separate_app_user() -> None:
    p = Paths("/srv/app", "app")
    same = services.install(p, "deploy", "deploy", ("media", ".env"))
    assert "chown" not in same
    other = services.install(p, "deploy", "www-data", ("media", ".env"))
    chowns = [shlex.split(line.partition("|| ")[2]) for line in other.splitlines() if "chown" in line]
    assert chowns == [["$SUDO", "chown", "www-data:www-data", f"/srv/app/shared/{d}"]
                      for d in ("log", "run", "media", ".env")]
    for text in (same, other):
        assert "/etc/systemd/system/wsgiship-app.service" in text
        assert "/srv/app/current/.wsgiship/service" in text
        assert "/srv/app/current/.wsgiship/nginx.conf" in text
        assert "/etc/nginx/sites-enabled/wsgiship-app" in text


def test_install_targets_the_managers_config_file() -> None:
    text = services.install(Paths("/srv/app", "app", "supervisor"), "deploy", "deploy")
    argv = shlex.split(line_with(text, "cmp -s").partition("then")[2].partition(";")[0])
    assert argv == ["$SUDO", "install", "-m", "644", "/srv/app/current/.wsgiship/service",
                    "/etc/supervisor/conf.d/wsgiship-app.conf"]
    assert "supervisorctl update wsgiship-app" in text
    assert "systemctl" not in text and "/etc/systemd" not in text


def test_install_quotes_the_users_and_shared_names() -> None:
    text = services.install(Paths("/srv/app", "app"), "deploy", "web" + HOSTILE, (HOSTILE,))
    chowns = [shlex.split(line.partition("|| ")[2]) for line in text.splitlines() if "chown" in line]
    assert chowns == [["$SUDO", "chown", f"web{HOSTILE}:www-data", f"/srv/app/shared/{d}"]
                      for d in ("log", "run", HOSTILE)]


def test_import_check_runs_the_release_wsgi_with_its_venv() -> None:
    text = checks.import_check(Paths("/srv/app", "app"), NAME)
    assert f"cd /srv/app/releases/{NAME}" in text
    argv = shlex.split(line_with(text, "timeout"))
    assert argv == ["timeout", "300", "./.venv/bin/python", "-c", checks.IMPORT_CHECK]
    compile(checks.IMPORT_CHECK, "<check>", "exec")


# --- venv key ---


def test_venv_key_is_stable() -> None:
    key = venv.venv_key("flask\n", "python3", "3.11.2")
    assert key == venv.venv_key("flask\n", "python3", "3.11.2")
    assert len(key) == 16 and all(c in "0123456789abcdef" for c in key)


@pytest.mark.parametrize("change", [
    ("flask==3.1\n", "python3", "3.11.2"),
    ("flask\nredis\n", "python3", "3.11.2"),
    ("flask\n", "python3.12", "3.11.2"),
    ("flask\n", "python3", "3.11.9"),
])
def test_venv_key_changes_with_requirements_or_python(change: tuple[str, str, str]) -> None:
    assert venv.venv_key(*change) != venv.venv_key("flask\n", "python3", "3.11.2")


def test_venv_key_fields_cannot_run_together() -> None:
    assert venv.venv_key("b", "python3", "3.11.") != venv.venv_key("", "python3", "3.11.b")


def test_venv_key_inputs_are_requirements_and_python_only() -> None:
    assert list(inspect.signature(venv.venv_key).parameters) == [
        "requirements", "python", "python_version"]


def test_a_code_change_keeps_the_venv_key(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("flask\n")
    (app / "app.py").write_text("v = 1\n")
    before = source.collect(app)
    (app / "app.py").write_text("v = 2\n")
    (app / "new.py").write_text("x = 1\n")
    after = source.collect(app)
    assert before.revision != after.revision
    assert (venv.venv_key(before.requirements, "python3", "3.11.2")
            == venv.venv_key(after.requirements, "python3", "3.11.2"))
    (app / "requirements.txt").write_text("flask\nredis\n")
    changed = source.collect(app)
    assert (venv.venv_key(changed.requirements, "python3", "3.11.2")
            != venv.venv_key(after.requirements, "python3", "3.11.2"))


# --- executing the release scripts on a local tree ---


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    root = tmp_path / "srv" / "app"
    for d in ("releases", "shared/log", "shared/run", "venvs"):
        (root / d).mkdir(parents=True)
    return root


def paths(root: Path) -> Paths:
    return Paths(str(root), "app")


def add_release(root: Path, name: str, *, failed: bool = False, venv_key: str | None = "base",
                configs: bool = True) -> Path:
    """A release dir with its configs and (as after a deploy's venv step) a .venv link."""
    r = root / "releases" / name
    r.mkdir()
    if configs:
        (r / ".wsgiship").mkdir()
        (r / ".wsgiship" / "uwsgi.ini").write_text("[uwsgi]\n")
    if failed:
        (r / "FAILED").write_text("health check failed\n")
    if venv_key:
        (root / "venvs" / venv_key).mkdir(exist_ok=True)
        (r / ".venv").symlink_to(f"../../venvs/{venv_key}")
    return r


def rel(i: int) -> str:
    """The i-th release name: timestamped, so names sort by age."""
    return f"20250101T0000{i:02d}Z-{i:07x}"


def survivors(root: Path) -> list[int]:
    names = sorted(p.name for p in (root / "releases").iterdir())
    return [int(n.rsplit("-", 1)[1], 16) for n in names]


def venvs(root: Path) -> set[str]:
    return {p.name for p in (root / "venvs").iterdir()}


def test_prepare_takes_the_lock_and_reports_facts(deploy: Path, sh) -> None:
    p = paths(deploy)
    (deploy / "current").symlink_to("releases/" + NAME)
    holder = {"by": "alice@laptop", "pid": "42", "token": "tok-1", "action": "deploy"}
    res = sh(release.prepare(p, sys.executable, holder))
    assert res.returncode == 0, res.stderr
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["current"] == "releases/" + NAME
    assert facts["user"]
    assert json.loads((deploy / ".lock" / "holder").read_text()) == holder


def test_prepare_without_current_reports_it_empty(deploy: Path, sh) -> None:
    res = sh(release.prepare(paths(deploy), sys.executable, {"token": "t"}))
    assert res.returncode == 0
    assert "current=\n" in res.stdout


def test_second_prepare_is_locked_and_prints_the_holder(deploy: Path, sh) -> None:
    p = paths(deploy)
    first = {"by": "alice@laptop", "token": "tok-1"}
    assert sh(release.prepare(p, sys.executable, first)).returncode == 0
    res = sh(release.prepare(p, sys.executable, {"by": "bob@desk", "token": "tok-2"}))
    assert res.returncode == release.LOCKED
    assert json.loads(res.stdout.splitlines()[0]) == first
    assert json.loads((deploy / ".lock" / "holder").read_text()) == first  # not overwritten


def test_unlock_with_a_wrong_token_leaves_the_lock(deploy: Path, sh) -> None:
    p = paths(deploy)
    assert sh(release.prepare(p, sys.executable, {"token": "tok-1"})).returncode == 0
    assert sh(release.unlock(p, "tok-2")).returncode == 0
    assert (deploy / ".lock" / "holder").is_file()
    assert sh(release.prepare(p, sys.executable, {"token": "tok-3"})).returncode == release.LOCKED
    assert sh(release.unlock(p, "tok-1")).returncode == 0
    assert not (deploy / ".lock").exists()
    assert sh(release.prepare(p, sys.executable, {"token": "tok-3"})).returncode == 0


def test_unlock_without_a_lock_succeeds(deploy: Path, sh) -> None:
    assert sh(release.unlock(paths(deploy), "tok")).returncode == 0


def test_prepare_asks_for_the_layout(tmp_path: Path, sh) -> None:
    res = sh(release.prepare(Paths(str(tmp_path / "missing"), "app"), sys.executable, {}))
    assert res.returncode == release.NEEDS_LAYOUT
    assert not (tmp_path / "missing").exists()


def test_prepare_without_python_does_not_lock(deploy: Path, sh) -> None:
    res = sh(release.prepare(paths(deploy), "no-such-python-wsgiship", {"token": "t"}))
    assert res.returncode == release.NO_PYTHON
    assert not (deploy / ".lock").exists()


def write_upload(root: Path, files: dict[str, str], name: str = "upload.tar.gz") -> Path:
    src = source.Source(files={k: v.encode() for k, v in files.items()},
                        modes={k: 0o755 if k.endswith(".sh") else 0o644 for k in files},
                        revision="sha256:x", short_rev="x", dirty=False, requirements="")
    upload = root / f".{name}"
    upload.write_bytes(source.tarball(src, {".wsgiship/uwsgi.ini": "[uwsgi]\n"}))
    return upload


def test_unpack_extracts_the_tarball(deploy: Path, sh) -> None:
    upload = write_upload(deploy, {"app.py": "v=1\n", "pkg/mod.py": "x\n", "run.sh": "#!/bin/sh\n"})
    res = sh(release.unpack(paths(deploy), NAME, str(upload), (), ()))
    assert res.returncode == 0, res.stderr
    r = deploy / "releases" / NAME
    assert (r / "app.py").read_text() == "v=1\n"
    assert (r / "pkg" / "mod.py").read_text() == "x\n"
    assert (r / ".wsgiship" / "uwsgi.ini").is_file()
    assert os.access(r / "run.sh", os.X_OK)
    assert not upload.exists()  # the upload is removed
    assert r.stat().st_mode & 0o777 == 0o750  # created under umask 027


def test_unpack_creates_the_log_and_run_dirs(tmp_path: Path, sh) -> None:
    # a layout from before shared/run existed (or one whose shared dirs were removed)
    root = tmp_path / "srv" / "old"
    (root / "releases").mkdir(parents=True)
    upload = write_upload(root, {"app.py": "x\n"})
    res = sh(release.unpack(paths(root), NAME, str(upload), (), ()))
    assert res.returncode == 0, res.stderr
    for d in ("shared/log", "shared/run"):
        assert (root / d).is_dir(), d
        assert (root / d).stat().st_mode & 0o777 == 0o750  # under umask 027
    assert Paths(str(root), "app").run_dir == str(root / "shared" / "run")
    # there already: left as they are
    (root / "shared" / "run" / "uwsgi.sock").touch()
    upload = write_upload(root, {"app.py": "y\n"})
    assert sh(release.unpack(paths(root), rel(1), str(upload), (), ())).returncode == 0
    assert (root / "shared" / "run" / "uwsgi.sock").exists()


def test_unpack_never_overwrites_an_existing_release(deploy: Path, sh) -> None:
    add_release(deploy, NAME)
    (deploy / "releases" / NAME / "app.py").write_text("old\n")
    upload = write_upload(deploy, {"app.py": "new\n"})
    assert sh(release.unpack(paths(deploy), NAME, str(upload), (), ())).returncode != 0
    assert (deploy / "releases" / NAME / "app.py").read_text() == "old\n"


def test_unpack_seeds_shared_files_and_dirs_then_links_them(deploy: Path, sh) -> None:
    p, shared = paths(deploy), deploy / "shared"
    files, dirs = (".env", "conf/local.py", "secret.key"), ("media", "var/uploads")
    first = write_upload(deploy, {"app.py": "1\n", ".env": "A=1\n", "conf/local.py": "L = 1\n",
                                  "media/logo.png": "png1", "media/sub/x": "x1"})
    res = sh(release.unpack(p, rel(1), str(first), files, dirs))
    assert res.returncode == 0, res.stderr
    r1 = deploy / "releases" / rel(1)
    # seeded from the release on first use
    assert (shared / ".env").read_text() == "A=1\n"
    assert (shared / "conf" / "local.py").read_text() == "L = 1\n"
    assert (shared / "media" / "logo.png").read_text() == "png1"
    assert (shared / "media" / "sub" / "x").read_text() == "x1"
    # absent from the release: an empty private file, an empty dir
    assert (shared / "secret.key").read_bytes() == b""
    assert (shared / "secret.key").stat().st_mode & 0o077 == 0
    assert (shared / "var" / "uploads").is_dir()
    # and the release links to the shared copies
    for name in files + dirs:
        assert (r1 / name).is_symlink(), name
        assert os.readlink(r1 / name) == str(shared / name)
    # the next release brings its own copies: the shared ones win and are linked
    (shared / "media" / "uploaded.jpg").write_text("user data")
    second = write_upload(deploy, {"app.py": "2\n", ".env": "A=2\n", "media/logo.png": "png2"},
                          name="second.tar.gz")
    res = sh(release.unpack(p, rel(2), str(second), files, dirs))
    assert res.returncode == 0, res.stderr
    r2 = deploy / "releases" / rel(2)
    assert (r2 / ".env").read_text() == "A=1\n"
    assert (r2 / "media" / "logo.png").read_text() == "png1"
    assert (r2 / "media" / "uploaded.jpg").read_text() == "user data"
    assert (r2 / "app.py").read_text() == "2\n"
    for name in files + dirs:
        assert os.readlink(r2 / name) == str(shared / name)


def test_unpack_handles_names_with_spaces_and_quotes(deploy: Path, sh) -> None:
    name, odd = "r1 it's $(id)", "it's \"odd\" $HOME.txt"
    upload = write_upload(deploy, {"app.py": "x\n", odd: "secret\n"})
    res = sh(release.unpack(paths(deploy), name, str(upload), (odd,), ("my media",)))
    assert res.returncode == 0, res.stderr
    r = deploy / "releases" / name
    assert (r / "app.py").read_text() == "x\n"
    assert os.readlink(r / odd) == f"{deploy}/shared/{odd}"
    assert (deploy / "shared" / odd).read_text() == "secret\n"
    assert (r / "my media").is_symlink() and (deploy / "shared" / "my media").is_dir()
    assert sorted(p.name for p in (deploy / "releases").iterdir()) == [name]


def test_switch_points_current_at_the_release(deploy: Path, sh) -> None:
    p = paths(deploy)
    add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    before = sorted(p.name for p in (deploy / "releases" / rel(1)).iterdir())
    assert sh(release.switch(p, rel(1))).returncode == 0
    current = deploy / "current"
    assert current.is_symlink() and os.readlink(current) == f"releases/{rel(1)}"
    first_inode = current.lstat().st_ino
    res = sh(release.switch(p, rel(2)))
    assert res.returncode == 0, res.stderr
    assert current.is_symlink() and os.readlink(current) == f"releases/{rel(2)}"
    assert current.resolve() == deploy / "releases" / rel(2)
    # a new link renamed over the old one: a different inode, no leftovers, and nothing
    # written inside the old release (the classic `ln -sf` into a dir link mistake)
    assert current.lstat().st_ino != first_inode
    assert not (deploy / ".current.tmp").exists()
    assert sorted(p.name for p in (deploy / "releases" / rel(1)).iterdir()) == before
    # and back (a rollback)
    assert sh(release.switch(p, rel(1))).returncode == 0
    assert os.readlink(current) == f"releases/{rel(1)}"


def test_switch_is_a_rename_never_a_removal() -> None:
    text = release.switch(Paths("/srv/app", "app"), NAME)
    last = shlex.split(text.splitlines()[-1])
    assert last == ["mv", "-T", "/srv/app/.current.tmp", "/srv/app/current"]
    assert "rm " not in text


def test_switch_refuses_a_release_without_configs(deploy: Path, sh) -> None:
    p = paths(deploy)
    add_release(deploy, rel(1))
    add_release(deploy, rel(2), configs=False)
    assert sh(release.switch(p, rel(1))).returncode == 0
    assert sh(release.switch(p, rel(2))).returncode != 0
    assert os.readlink(deploy / "current") == f"releases/{rel(1)}"
    assert sh(release.switch(p, "missing")).returncode != 0


def test_mark_failed_writes_the_reason(deploy: Path, sh) -> None:
    add_release(deploy, NAME)
    assert sh(release.mark_failed(paths(deploy), NAME, HOSTILE)).returncode == 0
    assert (deploy / "releases" / NAME / "FAILED").read_text() == HOSTILE + "\n"
    # a release that never got unpacked: nothing to mark, no error
    assert sh(release.mark_failed(paths(deploy), "missing", "x")).returncode == 0
    assert not (deploy / "releases" / "missing").exists()


def test_append_log_appends_json_lines(deploy: Path, sh) -> None:
    p = paths(deploy)
    entries = [{"release": rel(1), "result": "ok"}, {"release": rel(2), "reason": HOSTILE}]
    for entry in entries:
        assert sh(release.append_log(p, entry)).returncode == 0
    lines = (deploy / "deploys.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == entries


# --- prune ---


def test_prune_keeps_the_newest_good_releases(deploy: Path, sh) -> None:
    for i in range(1, 8):
        add_release(deploy, rel(i))
    res = sh(release.prune(paths(deploy), 3, rel(7)))
    assert res.returncode == 0, res.stderr
    assert survivors(deploy) == [5, 6, 7]
    assert sorted(res.stdout.splitlines()) == [f"pruned {rel(i)}" for i in range(1, 5)]


def test_prune_with_nothing_to_do(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="k1")
    res = sh(release.prune(paths(deploy), 5, rel(1)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert survivors(deploy) == [1] and venvs(deploy) == {"k1"}


def test_prune_keeps_current_and_the_rollback_target_after_a_rollback(deploy: Path, sh) -> None:
    # a rollback made current (3) older than releases 4..6
    for i in range(1, 7):
        add_release(deploy, rel(i))
    res = sh(release.prune(paths(deploy), 2, rel(3)))
    assert res.returncode == 0, res.stderr
    # 6 and 5 are the newest 2; 3 is current; 2 is the newest good one before current
    assert survivors(deploy) == [2, 3, 5, 6]


def test_prune_keeps_current_even_when_it_is_the_oldest(deploy: Path, sh) -> None:
    for i in range(1, 6):
        add_release(deploy, rel(i))
    assert sh(release.prune(paths(deploy), 2, rel(1))).returncode == 0
    assert survivors(deploy) == [1, 4, 5]


def test_prune_rollback_target_skips_failed_releases(deploy: Path, sh) -> None:
    add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    add_release(deploy, rel(3), failed=True)
    add_release(deploy, rel(4), failed=True)
    add_release(deploy, rel(5))
    res = sh(release.prune(paths(deploy), 2, rel(5)))
    assert res.returncode == 0, res.stderr
    # 5 current, 4 the newest failed (kept for inspection), 3 an older failed one (pruned),
    # 2 the rollback target, 1 beyond keep=2
    assert survivors(deploy) == [2, 4, 5]
    assert f"pruned {rel(3)} (failed)" in res.stdout.splitlines()


def test_prune_drops_all_failed_releases_but_the_newest(deploy: Path, sh) -> None:
    add_release(deploy, rel(1))
    for i in (2, 3, 4):
        add_release(deploy, rel(i), failed=True)
    add_release(deploy, rel(5))
    add_release(deploy, rel(6), failed=True)
    add_release(deploy, rel(7))
    res = sh(release.prune(paths(deploy), 5, rel(7)))
    assert res.returncode == 0, res.stderr
    assert survivors(deploy) == [1, 5, 6, 7]
    assert sorted(res.stdout.splitlines()) == [f"pruned {rel(i)} (failed)" for i in (2, 3, 4)]


def test_prune_failed_releases_do_not_count_toward_keep(deploy: Path, sh) -> None:
    for i in range(1, 4):
        add_release(deploy, rel(i))
    add_release(deploy, rel(4), failed=True)
    add_release(deploy, rel(5), failed=True)
    add_release(deploy, rel(6))
    assert sh(release.prune(paths(deploy), 3, rel(6))).returncode == 0
    assert survivors(deploy) == [2, 3, 5, 6]


def test_prune_ignores_stray_files(deploy: Path, sh) -> None:
    for i in range(1, 4):
        add_release(deploy, rel(i))
    (deploy / "releases" / "zz-notes.txt").write_text("x")
    assert sh(release.prune(paths(deploy), 2, rel(3))).returncode == 0
    assert (deploy / "releases" / "zz-notes.txt").exists()
    assert {p.name for p in (deploy / "releases").iterdir()} == {rel(2), rel(3), "zz-notes.txt"}


def test_prune_removes_unused_venvs_and_keeps_used_ones(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="old")
    add_release(deploy, rel(2), venv_key="shared")
    add_release(deploy, rel(3), venv_key="shared")
    add_release(deploy, rel(4), failed=True, venv_key="broken")
    add_release(deploy, rel(5), failed=True, venv_key="failed")
    add_release(deploy, rel(6), venv_key="new")
    add_release(deploy, rel(7), failed=True, venv_key=None)  # pip failed: no .venv link
    (deploy / "venvs" / "orphan").mkdir()
    (deploy / "venvs" / "orphan" / ".complete").touch()
    res = sh(release.prune(paths(deploy), 2, rel(6)))
    assert res.returncode == 0, res.stderr
    # 6 is current, 7 the newest failed; 5 and 4 are older failed ones; 3 is the rollback
    # target; 2 and 1 are beyond keep=2 (current counts as one)
    assert survivors(deploy) == [3, 6, 7]
    assert venvs(deploy) == {"shared", "new"}
    out = res.stdout.splitlines()
    assert {line for line in out if line.startswith("pruned venv")} == {
        "pruned venv old", "pruned venv broken", "pruned venv failed", "pruned venv orphan"}


def test_prune_keeps_a_venv_linked_by_a_kept_failed_release(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), failed=True, venv_key="b")
    add_release(deploy, rel(3), venv_key="a")
    assert sh(release.prune(paths(deploy), 2, rel(3))).returncode == 0
    assert survivors(deploy) == [1, 2, 3]
    assert venvs(deploy) == {"a", "b"}


# --- venv.ensure, with a fake python whose venv has a fake pip ---

FAKE_PYTHON = r"""#!/bin/bash
echo "python $*" >> "$CALLS"
[ "$1" = -m ] && [ "$2" = venv ] || exit 9
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<'PIP'
#!/bin/bash
echo "pip $*"
if grep -q no-such-package "${@: -1}"; then
  echo "ERROR: No matching distribution found for no-such-package" >&2; exit 1
fi
PIP
chmod +x "$3/bin/pip"
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "fake-python"
    path.parent.mkdir(exist_ok=True)
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def release_with_requirements(root: Path, name: str, requirements: str) -> Path:
    r = add_release(root, name, venv_key=None)
    (r / ".wsgiship" / "requirements.txt").write_text(requirements)
    return r


def test_venv_is_built_once_then_reused(deploy: Path, fake_python: Path, tmp_path: Path,
                                        sh) -> None:
    calls = tmp_path / "calls"
    env = {"CALLS": str(calls)}
    p = paths(deploy)
    r1 = release_with_requirements(deploy, rel(1), "flask\n")
    res = sh(venv.ensure(p, rel(1), "k1", str(fake_python)), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "venv=created\n"
    assert (deploy / "venvs" / "k1" / ".complete").is_file()
    assert os.readlink(r1 / ".venv") == "../../venvs/k1"
    assert (r1 / ".venv").resolve() == deploy / "venvs" / "k1"
    log = (r1 / ".wsgiship" / "pip.log").read_text()
    assert log.startswith("pip install ")
    assert f" -r {r1}/.wsgiship/requirements.txt" in log
    r2 = release_with_requirements(deploy, rel(2), "flask\n")
    res = sh(venv.ensure(p, rel(2), "k1", str(fake_python)), env=env)
    assert res.stdout == "venv=reused\n"
    assert os.readlink(r2 / ".venv") == "../../venvs/k1"
    assert calls.read_text().splitlines() == [f"python -m venv {deploy}/venvs/k1"]


def test_an_incomplete_venv_is_rebuilt(deploy: Path, fake_python: Path, tmp_path: Path,
                                       sh) -> None:
    release_with_requirements(deploy, rel(1), "flask\n")
    (deploy / "venvs" / "k1" / "lib").mkdir(parents=True)  # an interrupted build
    (deploy / "venvs" / "k1" / "lib" / "junk").write_text("x")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake_python)),
             env={"CALLS": str(tmp_path / "calls")})
    assert res.stdout == "venv=created\n"
    assert not (deploy / "venvs" / "k1" / "lib" / "junk").exists()
    assert (deploy / "venvs" / "k1" / ".complete").is_file()


def test_a_failed_pip_install_leaves_no_venv(deploy: Path, fake_python: Path, tmp_path: Path,
                                             sh) -> None:
    r = release_with_requirements(deploy, rel(1), "no-such-package\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "bad", str(fake_python)),
             env={"CALLS": str(tmp_path / "calls")})
    assert res.returncode == 1
    assert "No matching distribution found for no-such-package" in res.stderr
    assert not (deploy / "venvs" / "bad").exists()
    assert not (r / ".venv").is_symlink()
    assert "no-such-package" in (r / ".wsgiship" / "pip.log").read_text()


def test_an_abandoned_build_is_killed_before_rebuilding(deploy: Path, fake_python: Path,
                                                       tmp_path: Path, sh) -> None:
    # A deploy whose connection was cut left its pip running in its own session.
    release_with_requirements(deploy, rel(1), "flask\n")
    orphan = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (deploy / "venvs" / "k1.builder").write_text(f"{orphan.pid}\n")
        res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake_python)),
                 env={"CALLS": str(tmp_path / "calls")})
        assert res.returncode == 0, res.stderr
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        assert res.stdout == "venv=created\n"
        assert not (deploy / "venvs" / "k1.builder").exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


# --- services, run with fakes ---
#
# The fakes stand in for the commands that would touch the machine. Each logs its call to
# $CALLS. With FAKE_LOGIN set to another user than root, the ones that need root refuse to run
# unless the fake `sudo` ran them (it logs `sudo <argv>` first), so a privileged script only
# passes when every root command carries $SUDO. Files under /etc go to $FAKE_ROOT/etc instead.

NEED_ROOT = r'''need_root() {
  if [ "${FAKE_LOGIN:-root}" != root ] && [ "${FAKE_UID:-}" != 0 ]; then
    echo "$1: permission denied (run as ${FAKE_LOGIN}, not root)" >&2; exit 77; fi
}
'''


def fake_scripts(real_ln: str, real_readlink: str) -> dict[str, str]:
    return {
        "sudo": 'echo "sudo $*" >> "$CALLS"\n'
                '[ "$1" = -n ] && shift\n'
                'if [ "$1" = -l ]; then exit "${SUDO_LIST_RC:-1}"; fi\n'
                'if [ -n "${SUDO_REFUSE:-}" ] && [ "$1" = "$SUDO_REFUSE" ]; then\n'
                '  echo "sudo: a password is required" >&2; exit 1; fi\n'
                'FAKE_UID=0 exec "$@"\n',
        "systemctl": 'echo "systemctl $*" >> "$CALLS"\n'
                     'case "$1" in\n'
                     '  is-active) if [ "$3" = nginx ]; then [ "${NGINX_ACTIVE:-1}" = 1 ];'
                     ' else [ "${ACTIVE:-0}" = 1 ]; fi ;;\n'
                     '  show) echo "${MAINPID:-0}" ;;\n'
                     '  *) need_root systemctl\n'
                     '     if [ "$1" = start ]; then [ "${START_OK:-1}" = 1 ]; fi ;;\n'
                     'esac\n',
        "journalctl": 'echo "journalctl $*" >> "$CALLS"\necho "journal: uwsgi exited"\n',
        "supervisorctl": 'echo "supervisorctl $*" >> "$CALLS"\n'
                         'need_root supervisorctl\n'
                         'case "$1" in\n'
                         '  status) if [ "${ACTIVE:-0}" = 1 ] || [ -e "$CALLS.started" ]; then\n'
                         '      echo "$2   RUNNING   pid ${MAINPID:-0}, uptime 0:00:05"\n'
                         '    else echo "$2   STOPPED   Not started"; exit 3; fi ;;\n'
                         '  start) if [ "${START_OK:-1}" = 1 ]; then touch "$CALLS.started";'
                         ' echo "$2: started"\n'
                         '    else echo "$2: ERROR (spawn error)"; exit 7; fi ;;\n'
                         '  pid) echo "${MAINPID:-0}" ;;\n'
                         '  tail) echo "supervisor: uwsgi exited" ;;\n'
                         'esac\n',
        # `nginx -t -c <file>` (the check before the switch) needs no root; the whole config does
        "nginx": 'echo "nginx $*" >> "$CALLS"\n'
                 'conf=""\n'
                 'for ((i = 1; i <= $#; i++)); do\n'
                 '  if [ "${!i}" = -c ]; then j=$((i + 1)); conf="${!j}"; fi; done\n'
                 'if [ -z "$conf" ]; then need_root nginx; else\n'
                 '  printf "%s\\n" "$@" > "$CALLS.argv"; dirname "$conf" > "$CALLS.dir"\n'
                 '  rm -rf "$CALLS.copy"; cp -r "$(dirname "$conf")" "$CALLS.copy"; fi\n'
                 'if [ -n "${NGINX_OUT:-}" ]; then\n'
                 '  printf "%s\\n" "$NGINX_OUT" | sed "s#SITE#$(dirname "${conf:-/x}")/site.conf#g"'
                 ' >&2; fi\n'
                 'exit "${NGINX_RC:-0}"\n',
        "install": 'echo "install $*" >> "$CALLS"\n'
                   'need_root install\n'
                   'case "${@: -1}" in /etc/*) echo "fake install: not into ${@: -1}" >&2;'
                   ' exit 9 ;; esac\n'
                   'if [ "$1" = -d ]; then exec mkdir -p "${@: -1}"; fi\n'
                   'mkdir -p "$(dirname "${@: -1}")"; exec cp "${@: -2:1}" "${@: -1}"\n',
        "ln": 'echo "ln $*" >> "$CALLS"\n'
              'need_root ln\n'
              'case "${@: -1}" in /etc/*) ;; *) echo "fake ln: unexpected $*" >&2; exit 9 ;; esac\n'
              'dst="$FAKE_ROOT${@: -1}"; mkdir -p "$(dirname "$dst")"\n'
              f'exec {real_ln} "${{@:1:$#-1}}" "$dst"\n',
        # /proc/<pid>/cwd of a worker running as another user: root only (WORKERS_HIDDEN=1)
        "readlink": 'echo "readlink $*" >> "$CALLS"\n'
                    'args=()\n'
                    'for a in "$@"; do case "$a" in\n'
                    '  /etc/*) args+=("$FAKE_ROOT$a") ;;\n'
                    '  /proc/*/cwd) if [ "${WORKERS_HIDDEN:-0}" = 1 ] && [ "${FAKE_UID:-}" != 0 ];'
                    ' then\n'
                    '      echo "readlink: $a: Permission denied" >&2; exit 1; fi\n'
                    '    args+=("$a") ;;\n'
                    '  *) args+=("$a") ;;\n'
                    'esac; done\n'
                    f'exec {real_readlink} "${{args[@]}}"\n',
        "chown": 'echo "chown $*" >> "$CALLS"\nneed_root chown\n',
        "groupadd": 'echo "groupadd $*" >> "$CALLS"\nneed_root groupadd\n',
        "getent": 'echo "getent $*" >> "$CALLS"\nexit "${GETENT_RC:-0}"\n',
    }


@pytest.fixture
def fakebin(tmp_path: Path) -> Path:
    """Stand-ins for sudo, the service managers, nginx, the root-only file commands (see
    above) and python3; each logs its call to $CALLS."""
    bin_ = tmp_path / "fakebin"
    bin_.mkdir()
    real_ln, real_readlink = shutil.which("ln"), shutil.which("readlink")
    assert real_ln and real_readlink
    for name, body in fake_scripts(real_ln, real_readlink).items():
        (bin_ / name).write_text("#!/bin/bash\n" + NEED_ROOT + body)
        (bin_ / name).chmod(0o755)
    (bin_ / "python3").symlink_to(sys.executable)
    return bin_


def fake_env(fakebin: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{fakebin}:{os.environ['PATH']}", "CALLS": str(fakebin / "calls"),
            "FAKE_ROOT": str(fakebin.parent / "root"), **extra}


def as_deploy(fakebin: Path, **extra: str) -> dict[str, str]:
    """fake_env for a login user that is not root (root commands need the fake sudo)."""
    return fake_env(fakebin, FAKE_LOGIN="deploy", **extra)


def calls(fakebin: Path) -> list[str]:
    path = fakebin / "calls"
    return path.read_text().splitlines() if path.exists() else []


def sudoed(fakebin: Path) -> list[str]:
    """The commands the script ran through sudo, in order."""
    return [c.removeprefix("sudo -n ") for c in calls(fakebin) if c.startswith("sudo -n ")]


def priv(body: str, sudo: str = "") -> str:
    """A privileged script as Remote.run(priv=True) sends it: $SUDO set first."""
    return f"SUDO={shell.q(sudo)}\n" + body


@dataclass(frozen=True)
class FakeRootPaths(Paths):
    """Paths whose service config file lives under a fake root: a test must not write /etc."""

    root: str = ""

    @property
    def service_file(self) -> str:
        return self.root + super().service_file


def svc_paths(root: Path, manager: str = "systemd") -> FakeRootPaths:
    """Paths for the services scripts; the fake root is the one fake_env names."""
    return FakeRootPaths(str(root), "app", manager, root=str(root.parents[1] / "root"))


def test_the_fake_root_is_where_the_fakes_write(deploy: Path, fakebin: Path) -> None:
    assert svc_paths(deploy).root == fake_env(fakebin)["FAKE_ROOT"]
    assert svc_paths(deploy).service_file.endswith("/root/etc/systemd/system/wsgiship-app.service")


MANAGERS = ["systemd", "supervisor"]

# what each manager's snippets run (as logged by the fakes)
MANAGER_CALLS = {
    "systemd": {"is_active": "systemctl is-active -q wsgiship-app",
                "start": "systemctl start wsgiship-app",
                "graceful": "systemctl reload wsgiship-app",
                "restart": "systemctl restart wsgiship-app",
                "main_pid": "systemctl show -p MainPID --value wsgiship-app",
                "why": "journalctl -u wsgiship-app -n 20 --no-pager",
                "why_output": "journal: uwsgi exited"},
    "supervisor": {"is_active": "supervisorctl status wsgiship-app",
                   "start": "supervisorctl start wsgiship-app",
                   "graceful": "supervisorctl signal HUP wsgiship-app",
                   "restart": None,  # `supervisorctl update` restarted a changed program
                   "main_pid": "supervisorctl pid wsgiship-app",
                   "why": "supervisorctl tail wsgiship-app stderr",
                   "why_output": "supervisor: uwsgi exited"},
}

# Who runs the scripts: root itself ($SUDO empty), or a deploy user with sudo -n.
LOGINS = {"root": ("", {}), "deploy": ("sudo -n", {"FAKE_LOGIN": "deploy"})}


@pytest.fixture
def master() -> Iterator[Callable[[Path, int], int]]:
    """Start a stand-in uWSGI master: a process whose `n` children run in `cwd`; its pid."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cwd: Path, n: int) -> int:
        body = " ".join(f"(cd {shlex.quote(str(cwd))} && exec sleep 30) &" for _ in range(n))
        proc = subprocess.Popen(["bash", "-c", body + " wait"], cwd="/", start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until both children have changed directory
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                      text=True).stdout.split()
            cwds = [os.path.realpath(f"/proc/{c}/cwd") for c in children]
            if len(children) == n and all(c == str(cwd) for c in cwds):
                break
            time.sleep(0.02)
        return proc.pid

    yield start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def reload_env(fakebin: Path, login: str, **extra: str) -> dict[str, str]:
    return fake_env(fakebin, **LOGINS[login][1], **extra)


def reload_script(deploy: Path, manager: str, login: str, release: str, previous: str,
                  processes: int = 2, as_other: bool = False, wait: int = 5,
                  unit_changed: str = "") -> str:
    body = services.reload_uwsgi(svc_paths(deploy, manager), release, previous, processes,
                                 as_other, wait=wait)
    if unit_changed:
        body = f"UNIT_CHANGED={unit_changed}\n" + body  # as the flow sends it
    return priv(body, LOGINS[login][0])


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_starts_a_stopped_service_and_waits_for_its_workers(
        deploy: Path, fakebin: Path, master, sh, manager: str, login: str) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, manager, login, rel(1), ""),
             env=reload_env(fakebin, login, MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    done = [c for c in calls(fakebin) if not c.startswith(("sudo ", "readlink", "getent"))]
    assert done[0].startswith(m["is_active"])
    assert m["start"] in done
    assert m["main_pid"] in done
    assert m["graceful"] not in done
    if login == "deploy":
        assert m["start"] in sudoed(fakebin)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_reloads_a_running_service_gracefully(deploy: Path, fakebin: Path, master,
                                                           sh, manager: str) -> None:
    add_release(deploy, rel(1), venv_key="a")
    r2 = add_release(deploy, rel(2), venv_key="b")  # a new venv: no chain reload
    pid = master(r2, 2)
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1)),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    assert m["graceful"] in sudoed(fakebin)
    assert m["start"] not in calls(fakebin)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_restarts_a_running_service_whose_unit_changed(
        deploy: Path, fakebin: Path, master, sh, fifo_reader, manager: str) -> None:
    add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))  # same venv, same ini, a fifo: a chain reload but for
    pid = master(r2, 2)               # the changed unit
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), unit_changed="1"),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=restarted\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    done = calls(fakebin)
    assert m["graceful"] not in done and m["start"] not in done
    assert not any("uwsgi.fifo" in c for c in done)
    fifo_reader.kill()
    assert fifo_reader.communicate()[0] == b""  # nothing written to the fifo
    if m["restart"]:
        assert m["restart"] in sudoed(fakebin)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_starts_a_stopped_service_even_when_its_unit_changed(
        deploy: Path, fakebin: Path, master, sh, manager: str) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, manager, "root", rel(1), "", unit_changed="1"),
             env=reload_env(fakebin, "root", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    assert "systemctl restart wsgiship-app" not in calls(fakebin)


@pytest.fixture
def fifo_reader(deploy: Path) -> Iterator[subprocess.Popen[bytes]]:
    """uWSGI's master fifo at its place in shared/run, read by a stand-in master."""
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    yield reader
    if reader.poll() is None:
        reader.kill()
    reader.wait()


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_chain_reloads_through_the_fifo_as_the_app_user(
        deploy: Path, fakebin: Path, master, sh, fifo_reader, manager: str) -> None:
    r1 = add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))  # the same venv
    (r1 / ".wsgiship" / "uwsgi.ini").write_text(f"; release {rel(1)}\n[uwsgi]\n")
    (r2 / ".wsgiship" / "uwsgi.ini").write_text(f"; release {rel(2)}\n[uwsgi]\n")
    pid = master(r2, 2)
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_other=True,
                           unit_changed="0"),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=chain\nworkers=2\n"
    assert fifo_reader.communicate(timeout=5)[0] == b"c"
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    # uWSGI runs as another user: its fifo and its workers' cwd need root
    assert f"timeout 5 sh -c printf c > {fifo}" in sudoed(fakebin)
    assert f"readlink /proc/{pid_of_a_worker(pid)}/cwd" in sudoed(fakebin)
    assert MANAGER_CALLS[manager]["graceful"] not in calls(fakebin)


def pid_of_a_worker(master_pid: int) -> str:
    return subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True,
                          text=True).stdout.split()[0]


def test_reload_uwsgi_chain_is_graceful_when_the_ini_changed(deploy: Path, fakebin: Path,
                                                             master, sh, fifo_reader) -> None:
    add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))
    (r2 / ".wsgiship" / "uwsgi.ini").write_text("[uwsgi]\nprocesses = 4\n")
    pid = master(r2, 2)
    res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1)),
             env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    assert "systemctl reload wsgiship-app" in calls(fakebin)
    fifo_reader.kill()
    assert fifo_reader.communicate()[0] == b""  # nothing written to the fifo


def test_reload_uwsgi_fails_while_workers_serve_the_old_release(deploy: Path, fakebin: Path,
                                                               master, sh) -> None:
    r1 = add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    (deploy / "shared" / "log" / "uwsgi.log").write_text("worker 1 buried after 1 seconds\n")
    pid = master(r1, 2)
    res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1), wait=0),
             env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert "worker 1 buried" in res.stderr


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_reports_unknown_workers_it_may_not_look_into(
        deploy: Path, fakebin: Path, master, sh, manager: str) -> None:
    # uWSGI runs as another user and sudo does not allow reading its /proc entries: the
    # reload cannot tell which release the workers serve (the health check will)
    r1 = add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), venv_key="b")
    pid = master(r1, 2)
    env = reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid), WORKERS_HIDDEN="1",
                     SUDO_REFUSE="readlink")
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_other=True, wait=2),
             env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=unknown\n"
    # with sudo allowed to look, the old workers are seen for what they are
    (fakebin / "calls").unlink()
    env.pop("SUDO_REFUSE")
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_other=True, wait=0),
             env=env)
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert any(c.startswith("readlink /proc/") for c in sudoed(fakebin))


def test_reload_uwsgi_waits_for_all_workers_even_unknown_ones(deploy: Path, fakebin: Path,
                                                              master, sh) -> None:
    r1 = add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), venv_key="b")
    pid = master(r1, 1)  # one worker of the 2 configured: not all there yet
    res = sh(reload_script(deploy, "systemd", "deploy", rel(2), rel(1), as_other=True, wait=1),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid),
                            WORKERS_HIDDEN="1", SUDO_REFUSE="readlink"))
    assert res.returncode == 1
    assert "only 0 of 1 workers serve the new release after 1s" in res.stderr


def test_reload_uwsgi_reads_worker_dirs_without_sudo_for_its_own_workers(
        deploy: Path, fakebin: Path, master, sh) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, "systemd", "deploy", rel(1), "", as_other=False),
             env=reload_env(fakebin, "deploy", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    assert any(c.startswith("readlink /proc/") for c in calls(fakebin))
    assert sudoed(fakebin) == ["systemctl start wsgiship-app"]


@pytest.fixture
def instant_sleep(fakebin: Path) -> None:
    """A `sleep` that returns at once, so polling for a service that never starts is quick."""
    (fakebin / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (fakebin / "sleep").chmod(0o755)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_failure_to_start_shows_why_and_the_app_log(
        deploy: Path, fakebin: Path, sh, instant_sleep, manager: str) -> None:
    add_release(deploy, rel(1))
    (deploy / "shared" / "log" / "uwsgi.log").write_text("ImportError: no module named hello\n")
    res = sh(reload_script(deploy, manager, "deploy", rel(1), "", wait=1),
             env=reload_env(fakebin, "deploy", START_OK="0"))
    assert res.returncode == 1
    m = MANAGER_CALLS[manager]
    assert m["why_output"] in res.stderr
    assert "ImportError: no module named hello" in res.stderr
    assert m["why"] in calls(fakebin)
    assert "uwsgi=" not in res.stdout


def test_reload_uwsgi_quotes_release_names() -> None:
    text = services.reload_uwsgi(Paths("/srv/app", "app"), HOSTILE, "old" + HOSTILE, 2, False)
    assert shlex.split(line_with(text, "NEW=")) == [
        f"NEW=/srv/app/releases/{HOSTILE};", f"OLD=/srv/app/releases/old{HOSTILE}"]


def test_reload_uwsgi_writes_the_fifo_in_shared_run() -> None:
    text = services.reload_uwsgi(Paths("/srv/app", "app"), NAME, "old", 2, as_other=True)
    line = line_with(text, "timeout 5")
    assert line.startswith("chain() { ") and line.endswith("; }")
    argv = shlex.split(line[len("chain() { "):-len("; }")])
    assert argv[:5] == ["$SUDO", "timeout", "5", "sh", "-c"]
    assert shlex.split(argv[5]) == ["printf", "c", ">", "/srv/app/shared/run/uwsgi.fifo"]
    assert "[ -p /srv/app/shared/run/uwsgi.fifo ]" in text


# --- reload_nginx ---


def site(root: Path, name: str, text: str) -> None:
    r = add_release(root, name)
    (r / ".wsgiship" / "nginx.conf").write_text(text)


SITE = "server {\n    listen 80;\n}\n"


def test_reload_nginx_skips_an_unchanged_site(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(1), "# release 1\n" + SITE)
    site(deploy, rel(2), "# release 2\n" + SITE.replace("{\n", "{\n    # a comment\n"))
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), rel(1)), "sudo -n"),
             env=as_deploy(fakebin))
    assert res.returncode == 0 and res.stdout == "nginx=unchanged\n"
    assert calls(fakebin) == ["systemctl is-active -q nginx"]  # nothing needed root


@pytest.mark.parametrize("previous,force,old_site", [
    (rel(1), False, SITE.replace("80", "8080")),  # the site changed
    (rel(1), True, SITE),                          # the site link was (re)installed
    ("", False, SITE),                             # first deploy
    (rel(9), False, SITE),                         # previous release pruned meanwhile
])
def test_reload_nginx_tests_then_reloads(deploy: Path, fakebin: Path, sh, previous: str,
                                         force: bool, old_site: str) -> None:
    site(deploy, rel(1), old_site)
    site(deploy, rel(2), SITE)
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), previous, force=force), "sudo -n"),
             env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "nginx=reloaded\n"
    assert calls(fakebin)[-5:] == ["sudo -n nginx -t -q", "nginx -t -q",
                                   "systemctl is-active -q nginx",
                                   "sudo -n systemctl reload nginx", "systemctl reload nginx"]


def test_reload_nginx_as_root_runs_the_same_without_sudo(deploy: Path, fakebin: Path,
                                                         sh) -> None:
    site(deploy, rel(2), SITE)
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), "")), env=fake_env(fakebin))
    assert res.returncode == 0 and res.stdout == "nginx=reloaded\n"
    assert calls(fakebin) == ["nginx -t -q", "systemctl is-active -q nginx",
                              "systemctl reload nginx"]


def test_reload_nginx_starts_a_stopped_nginx(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(1), SITE)
    site(deploy, rel(2), SITE)  # unchanged, but a stopped nginx still has to start
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), rel(1)), "sudo -n"),
             env=as_deploy(fakebin, NGINX_ACTIVE="0"))
    assert res.returncode == 0 and res.stdout == "nginx=started\n"
    assert sudoed(fakebin) == ["nginx -t -q", "systemctl start nginx"]


def test_reload_nginx_stops_on_a_broken_config(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(2), SITE)
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), ""), "sudo -n"),
             env=as_deploy(fakebin, NGINX_RC="1",
                           NGINX_OUT='nginx: [emerg] unknown directive "lisen"'))
    assert res.returncode == 1
    assert 'unknown directive "lisen"' in res.stdout  # nginx -t's complaint is shown
    assert calls(fakebin)[-1] == "nginx -t -q"


# --- nginx_check, before the switch (no root) ---


def nginx_release(deploy: Path, text: str) -> Path:
    r = add_release(deploy, NAME)
    (r / ".wsgiship" / "nginx.conf").write_text(text)
    return r / ".wsgiship" / "nginx.conf"


def test_nginx_check_wraps_the_site_in_a_throwaway_config(deploy: Path, fakebin: Path, sh,
                                                          make_app) -> None:
    rendered = render(make_app(name="shop", static={"/static": "static"}), NAME, "deploy",
                      "r")[".wsgiship/nginx.conf"]
    site_path = nginx_release(deploy, rendered)
    res = sh(priv(checks.nginx_check(paths(deploy), NAME), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert sudoed(fakebin) == [] and not any(c.startswith("sudo") for c in calls(fakebin))
    tmpdir = (fakebin / "calls.dir").read_text().strip()
    argv = (fakebin / "calls.argv").read_text().splitlines()
    assert argv == ["-t", "-q", "-e", "/dev/stderr", "-g", f"pid {tmpdir}/nginx.pid;",
                    "-c", f"{tmpdir}/nginx.conf"]
    copy = fakebin / "calls.copy"
    assert (copy / "nginx.conf").read_text() == (
        "include /etc/nginx/modules-enabled/*.conf;\n"
        "events {}\n"
        f"http {{ include /etc/nginx/mime.types; include {tmpdir}/site.conf; }}\n")
    # the site as the release has it, but for its log files (opening them needs root)
    expected = (rendered.replace("/var/log/nginx/shop.access.log", "/dev/null")
                .replace("/var/log/nginx/shop.error.log", "/dev/null"))
    assert expected != rendered
    assert (copy / "site.conf").read_text() == expected
    assert site_path.read_text() == rendered  # the release's own copy is untouched
    assert not Path(tmpdir).exists()  # removed on exit


def test_nginx_check_points_every_log_at_dev_null(deploy: Path, fakebin: Path, sh) -> None:
    nginx_release(deploy, "server {\n"
                          "    access_log /var/log/nginx/a.log combined;\n"
                          "\terror_log  /var/log/nginx/e.log warn;\n"
                          "    location /x {\n"
                          "        access_log /var/log/nginx/x.log;\n"
                          "    }\n"
                          "    # access_log /not/a/directive.log;\n"
                          "}\n")
    assert sh(checks.nginx_check(paths(deploy), NAME), env=fake_env(fakebin)).returncode == 0
    assert (fakebin / "calls.copy" / "site.conf").read_text() == (
        "server {\n"
        "    access_log /dev/null combined;\n"
        "\terror_log /dev/null warn;\n"
        "    location /x {\n"
        "        access_log /dev/null;\n"
        "    }\n"
        "    # access_log /not/a/directive.log;\n"
        "}\n")


def test_nginx_check_fails_on_a_broken_site_naming_the_release_file(deploy: Path,
                                                                    fakebin: Path, sh) -> None:
    site_path = nginx_release(deploy, "server {\n    lisen 80;\n}\n")
    out = ('nginx: [emerg] unknown directive "lisen" in SITE:2\n'
           "nginx: configuration file /tmp/x/nginx.conf test failed")
    res = sh(priv(checks.nginx_check(paths(deploy), NAME), "sudo -n"),
             env=as_deploy(fakebin, NGINX_RC="1", NGINX_OUT=out))
    assert res.returncode == 1
    assert f'nginx: [emerg] unknown directive "lisen" in {site_path}:2' in res.stdout
    tmpdir = (fakebin / "calls.dir").read_text().strip()
    assert tmpdir not in res.stdout  # the throwaway copy is never named
    assert not Path(tmpdir).exists()


@pytest.mark.parametrize("out,ok", [
    # only a file the login user may not read (e.g. a TLS key): left to the root nginx -t
    ('nginx: [emerg] cannot load certificate key "/etc/ssl/private/shop.key": BIO_new_file()'
     " failed (SSL: error:8000000D:system library::Permission denied)", True),
    ('nginx: [emerg] open() "/etc/nginx/htpasswd" failed (13: Permission denied) in SITE:9',
     True),
    # a permission problem and a real error: the real error fails the check
    ('nginx: [emerg] open() "/etc/ssl/private/shop.key" failed (13: Permission denied)\n'
     'nginx: [emerg] invalid port in "80x" of the "listen" directive in SITE:2', False),
])
def test_nginx_check_leaves_permission_problems_to_the_root_check(
        deploy: Path, fakebin: Path, sh, out: str, ok: bool) -> None:
    nginx_release(deploy, SITE)
    res = sh(checks.nginx_check(paths(deploy), NAME),
             env=fake_env(fakebin, NGINX_RC="1", NGINX_OUT=out))
    assert res.returncode == (0 if ok else 1), res.stdout + res.stderr
    if not ok:
        assert 'invalid port in "80x"' in res.stdout


# --- unit_check, before the switch ---


def service_config(deploy: Path, release: str, text: str, installed: str | None,
                   manager: str = "systemd") -> FakeRootPaths:
    """A release with a service config, and (unless None) the one installed."""
    r = add_release(deploy, release)
    (r / ".wsgiship" / "service").write_text(text)
    p = svc_paths(deploy, manager)
    if installed is not None:
        Path(p.service_file).parent.mkdir(parents=True)
        Path(p.service_file).write_text(installed)
    return p


UNIT = "[Service]\nUser=deploy\n"


@pytest.mark.parametrize("manager", MANAGERS)
def test_unit_check_passes_an_unchanged_service_config(deploy: Path, fakebin: Path, sh,
                                                       manager: str) -> None:
    p = service_config(deploy, NAME, UNIT, UNIT, manager)
    res = sh(priv(checks.unit_check(p, NAME, "web1"), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert calls(fakebin) == []  # no need to ask sudo


@pytest.mark.parametrize("installed", [UNIT.replace("deploy", "web"), None])
def test_unit_check_refuses_a_change_sudo_does_not_allow(deploy: Path, fakebin: Path, sh,
                                                         installed: str | None) -> None:
    p = service_config(deploy, NAME, UNIT, installed)
    res = sh(priv(checks.unit_check(p, NAME, "web1"), "sudo -n"),
             env=as_deploy(fakebin, SUDO_LIST_RC="1"))
    assert res.returncode == 1
    assert f"the service config differs from {p.service_file}" in res.stderr
    assert "web1 may not install it" in res.stderr
    assert "run fab setup -H web1 (as root)" in res.stderr
    if installed:  # what would change
        assert "-User=web" in res.stderr and "+User=deploy" in res.stderr


def test_unit_check_asks_sudo_for_the_exact_install_command(deploy: Path, fakebin: Path,
                                                            sh) -> None:
    p = service_config(deploy, NAME, UNIT, UNIT.replace("deploy", "web"))
    res = sh(priv(checks.unit_check(p, NAME, "web1"), "sudo -n"),
             env=as_deploy(fakebin, SUDO_LIST_RC="0"))
    assert res.returncode == 0, res.stderr
    listed = shlex.split(calls(fakebin)[0])
    assert listed[:3] == ["sudo", "-n", "-l"]
    # the very command services.install will run (sudo -l matches it argument for argument)
    install_line = line_with(services.install(p, "deploy", "deploy"), "$SUDO install")
    installed = shlex.split(install_line.partition("$SUDO ")[2].partition(";")[0])
    assert listed[3:] == installed == [
        "install", "-m", "644", f"{deploy}/current/.wsgiship/service", p.service_file]


def test_unit_check_is_skipped_when_the_script_runs_as_root(deploy: Path, fakebin: Path,
                                                            sh) -> None:
    # root login, or the whole script under one sudo (a sudo password given): $SUDO is empty
    p = service_config(deploy, NAME, UNIT, None)
    res = sh(priv(checks.unit_check(p, NAME, "web1")), env=fake_env(fakebin))
    assert res.returncode == 0, res.stderr
    assert calls(fakebin) == []


def test_the_checks_before_the_switch_run_as_one_script(deploy: Path, fakebin: Path,
                                                        sh) -> None:
    # the flow sends nginx_check + unit_check as one privileged script
    p = service_config(deploy, NAME, UNIT, UNIT.replace("deploy", "web"))
    (deploy / "releases" / NAME / ".wsgiship" / "nginx.conf").write_text(SITE)
    body = priv(checks.nginx_check(p, NAME) + checks.unit_check(p, NAME, "web1"), "sudo -n")
    res = sh(body, env=as_deploy(fakebin, SUDO_LIST_RC="0"))
    assert res.returncode == 0, res.stderr
    assert [c.split()[0] for c in calls(fakebin)] == ["nginx", "sudo"]
    res = sh(body, env=as_deploy(fakebin, SUDO_LIST_RC="1"))
    assert res.returncode == 1 and "fab setup -H web1" in res.stderr
    res = sh(body, env=as_deploy(fakebin, NGINX_RC="1", NGINX_OUT="nginx: [emerg] bad"))
    assert res.returncode == 1 and "[emerg] bad" in res.stdout


# --- install and layout, executed ---


def current_release(deploy: Path, manager: str) -> Path:
    r = add_release(deploy, rel(1))
    (r / ".wsgiship" / "service").write_text(f"{manager} config\n")
    (r / ".wsgiship" / "nginx.conf").write_text(SITE)
    (deploy / "current").symlink_to(f"releases/{rel(1)}")
    return r


@pytest.mark.parametrize("manager", MANAGERS)
def test_install_runs_each_root_command_through_sudo_once_and_only_when_needed(
        deploy: Path, fakebin: Path, sh, manager: str) -> None:
    current_release(deploy, manager)
    p = svc_paths(deploy, manager)
    body = priv(services.install(p, "deploy", "web", (".env",)), "sudo -n")
    res = sh(body, env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "unit=installed\nsite=installed\nsite=installed\n"
    fake_root = Path(p.root)
    assert Path(p.service_file).read_text() == f"{manager} config\n"
    available = fake_root / "etc/nginx/sites-available/wsgiship-app"
    enabled = fake_root / "etc/nginx/sites-enabled/wsgiship-app"
    assert os.readlink(available) == f"{deploy}/current/.wsgiship/nginx.conf"
    assert os.readlink(enabled) == "../sites-available/wsgiship-app"
    apply = (["systemctl daemon-reload", "systemctl enable -q wsgiship-app"]
             if manager == "systemd" else
             ["supervisorctl reread", "supervisorctl update wsgiship-app"])
    assert sudoed(fakebin) == [
        f"install -m 644 {deploy}/current/.wsgiship/service {p.service_file}",
        *apply,
        f"ln -sfn {deploy}/current/.wsgiship/nginx.conf /etc/nginx/sites-available/wsgiship-app",
        "ln -sfn ../sites-available/wsgiship-app /etc/nginx/sites-enabled/wsgiship-app",
        *(f"chown web:www-data {deploy}/shared/{d}" for d in ("log", "run", ".env")),
    ]
    # everything in place: only the chown of dirs not yet the app user's needs root (the fake
    # chown changes nothing), and none when the app user is the login
    (fakebin / "calls").unlink()
    res = sh(body, env=as_deploy(fakebin))
    assert res.returncode == 0 and res.stdout == ""
    assert [c.split()[0] for c in sudoed(fakebin)] == ["chown"] * 3
    (fakebin / "calls").unlink()
    res = sh(priv(services.install(p, "deploy", "deploy"), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0 and res.stdout == ""
    assert sudoed(fakebin) == []
    assert any(c.startswith("readlink /etc/nginx/") for c in calls(fakebin))


def test_layout_runs_each_root_command_through_sudo(tmp_path: Path, fakebin: Path,
                                                    sh) -> None:
    p = paths(tmp_path / "srv" / "new")
    res = sh(priv(release.layout(p, "deploy"), "sudo -n"), env=as_deploy(fakebin, GETENT_RC="2"))
    assert res.returncode == 0, res.stderr
    assert calls(fakebin)[0] == "getent group www-data"  # a read: no sudo
    assert sudoed(fakebin) == ["groupadd --system www-data"] + [
        f"install -d -o deploy -g www-data -m 2750 {d}" for d in p.dirs]
    assert all(Path(d).is_dir() for d in p.dirs)
    # www-data there already: no groupadd
    (fakebin / "calls").unlink()
    assert sh(priv(release.layout(p, "deploy"), "sudo -n"),
              env=as_deploy(fakebin)).returncode == 0
    assert not any("groupadd" in c for c in calls(fakebin))


@pytest.mark.parametrize("script", ["install", "uwsgi", "nginx", "layout"])
def test_a_root_command_without_sudo_fails_under_the_fakes(deploy: Path, fakebin: Path, sh,
                                                           script: str) -> None:
    # the fakes' check the tests above rely on: without $SUDO a deploy user gets refused
    current_release(deploy, "systemd")
    site(deploy, rel(2), SITE.replace("80", "81"))
    p = svc_paths(deploy)
    body = {"install": services.install(p, "deploy", "deploy"),
            "uwsgi": services.reload_uwsgi(p, rel(2), rel(1), 2, False, wait=0),
            "nginx": nginx.reload_nginx(p, rel(2), rel(1)),
            "layout": release.layout(p, "deploy")}[script]
    res = sh(priv(body, ""), env=as_deploy(fakebin, GETENT_RC="2", ACTIVE="1"))
    assert res.returncode == 77
    assert "permission denied (run as deploy, not root)" in res.stdout + res.stderr


# --- which commands carry $SUDO, across every branch of the scripts ---

# A command word: at a line start or after ; && || | ( { $( <(, behind any if/then/else/do/!/{.
COMMAND = re.compile(
    r"(?:^|&&|\|\||[;|(]|(?<!\$)\{|\$\(|<\()(?:[ \t]*(?:then|else|elif|if|while|do|!|\{)(?=[ \t]))*"
    r"[ \t]*(\$SUDO[ \t]+)?([\w./-]+)((?:[^;&|)$<\n]|\$(?!\()|<(?!\())*)", re.M)

ROOT_SYSTEMCTL = {"start", "reload", "restart", "daemon-reload", "enable"}
READ_SYSTEMCTL = {"is-active", "show"}
ROOT_COMMANDS = {"install", "ln", "nginx", "supervisorctl", "chown", "groupadd"}
# read-only, or the script's own shell work (`chain` is reload_uwsgi's own function)
SHELL_WORDS = {"export", "case", "esac", "echo", "exit", "true", "sleep", "seq", "set", "if",
               "then", "else", "elif", "fi", "for", "while", "do", "done", "break", "chain"}
PLAIN_COMMANDS = {"stat", "ps", "cmp", "readlink", "getent", "journalctl", "pgrep", "grep", "tail",
                  "timeout",
                  *SHELL_WORDS}


def commands(text: str) -> list[tuple[bool, str, str]]:
    """(carries $SUDO, command, its arguments) for every command in a script, assignments
    (NAME=value, and arithmetic) left out."""
    out = []
    text = re.sub(r"\$\(\([^)]*\)\)", "0", text)  # arithmetic
    for m in COMMAND.finditer(text):
        sudo, word, rest = bool(m[1]), m[2], m[3]
        if rest.startswith("=") or word.isupper():
            continue
        out.append((sudo, word, rest.strip()))
    return out


def sudo_scripts(manager: str, as_other: bool) -> dict[str, str]:
    p = Paths("/srv/app", "app", manager)
    return {
        "install": services.install(p, "deploy", "web" if as_other else "deploy", ("media",)),
        "reload_uwsgi": services.reload_uwsgi(p, NAME, "older", 2, as_other),
        "reload_nginx": nginx.reload_nginx(p, NAME, "older"),
        "layout": release.layout(p, "deploy"),
    }


@pytest.mark.parametrize("as_other", [False, True], ids=["own-user", "app-user"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_exactly_the_root_commands_carry_sudo(manager: str, as_other: bool) -> None:
    seen: dict[str, set[str]] = {}
    for name, text in sudo_scripts(manager, as_other).items():
        for sudo, word, args in commands(text):
            sub = args.split()[0] if args else ""
            where = f"{name}: {'$SUDO ' if sudo else ''}{word} {args}"
            if word == "systemctl":
                assert sub in ROOT_SYSTEMCTL | READ_SYSTEMCTL, where
                assert sudo == (sub in ROOT_SYSTEMCTL), where
                word = f"systemctl {sub}"
            elif word in ROOT_COMMANDS:
                assert sudo, where
            elif word in ("readlink", "timeout") and args.startswith(('"/proc/', "5 sh -c")):
                # uWSGI's /proc entries and fifo: root's when it runs as another user
                assert sudo == as_other, where
            else:
                assert word in PLAIN_COMMANDS, f"unclassified command: {where}"
                assert not sudo, where
            if word not in SHELL_WORDS:
                seen.setdefault(name, set()).add(("$SUDO " if sudo else "") + word)
    # the checks above saw the commands that matter (a parse that found nothing would pass)
    apply = ({"$SUDO systemctl daemon-reload", "$SUDO systemctl enable"} if manager == "systemd"
             else {"$SUDO supervisorctl"})
    assert seen["install"] >= {"cmp", "readlink", "$SUDO install", "$SUDO ln", *apply}
    assert ("$SUDO chown" in seen["install"]) == as_other
    if manager == "systemd":
        assert seen["reload_uwsgi"] >= {
            "systemctl is-active", "$SUDO systemctl start", "$SUDO systemctl restart",
            "$SUDO systemctl reload", "systemctl show", "readlink", "cmp"}
    else:
        assert "$SUDO supervisorctl" in seen["reload_uwsgi"]
        assert not any("systemctl" in c for c in seen["reload_uwsgi"])
    assert ("$SUDO readlink" in seen["reload_uwsgi"]) == as_other
    assert ("$SUDO timeout" in seen["reload_uwsgi"]) == as_other
    assert seen["reload_nginx"] >= {"systemctl is-active", "cmp", "$SUDO nginx",
                                    "$SUDO systemctl reload", "$SUDO systemctl start"}
    assert seen["layout"] == {"getent", "$SUDO groupadd", "$SUDO install"}


def test_the_checks_before_the_switch_need_no_sudo() -> None:
    p = Paths("/srv/app", "app")
    for text in (checks.nginx_check(p, NAME), checks.import_check(p, NAME)):
        assert "$SUDO" not in text
    # unit_check only asks sudo what it allows (sudo -l), it runs nothing through it
    assert [c for c in commands(checks.unit_check(p, NAME, "web1")) if c[0]] == []


def test_remote_run_sets_sudo_for_privileged_scripts(monkeypatch: pytest.MonkeyPatch,
                                                     make_app, sh) -> None:
    from fabric import Config

    from wsgiship.config import Host
    from wsgiship.remote import Remote

    def remote(user: str, password: str | None = None) -> tuple[Remote, list[str]]:
        config = Config(overrides={"sudo": {"password": password}}) if password else None
        r = Remote(Host("web1", "192.0.2.1", make_app(), user=user), config)
        seen: list[str] = []

        def run(how: str) -> Callable[..., object]:
            def go(command: str, **_: object) -> object:
                seen.append(how)
                res = sh(shlex.split(command)[2])
                return type("R", (), {"exited": res.returncode, "stdout": res.stdout,
                                      "stderr": res.stderr})()
            return go

        monkeypatch.setattr(r.conn, "run", run("run"))
        monkeypatch.setattr(r.conn, "sudo", run("sudo"))
        return r, seen

    body = shell.script(['echo "[$SUDO]"'])
    r, seen = remote("root")
    assert r.run(body, priv=True).stdout == "[]\n" and seen == ["run"]
    r, seen = remote("deploy")
    assert r.run(body, priv=True).stdout == "[sudo -n]\n" and seen == ["run"]
    assert not r.run(body, check=False).ok  # unprivileged: no $SUDO at all (set -u)
    r, seen = remote("deploy", password="secret")
    assert r.run(body, priv=True).stdout == "[]\n" and seen == ["sudo"]


def test_error_log_tail(deploy: Path, sh) -> None:
    log = deploy / "shared" / "log" / "uwsgi.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    res = sh(services.error_log_tail(paths(deploy), 3))
    assert res.stdout == "line 47\nline 48\nline 49\n"
    log.unlink()
    res = sh(services.error_log_tail(paths(deploy)))
    assert res.returncode == 0 and res.stdout == ""


def test_import_check_imports_the_app_with_the_release_venv(deploy: Path, make_app,
                                                            sh) -> None:
    p = paths(deploy)
    for name, wsgi, module in [
        (rel(1), "myapp:app", "def app(environ, start_response):\n    return [b'ok']\n"),
        (rel(2), "myapp:app", "app = None\n"),
        (rel(3), "myapp:app", "raise ImportError('broken dependency')\n"),
    ]:
        r = add_release(deploy, name, venv_key=None)
        (r / ".venv" / "bin").mkdir(parents=True)
        (r / ".venv" / "bin" / "python").symlink_to(sys.executable)
        (r / "myapp.py").write_text(module)
        for target, text in render(make_app(wsgi=wsgi), name, "deploy", "rev").items():
            (r / target).write_text(text)
    ok = sh(checks.import_check(p, rel(1)))
    assert ok.returncode == 0, ok.stderr
    # `application` wraps the app, so a None app still defines it: the check passes
    assert sh(checks.import_check(p, rel(2))).returncode == 0
    broken = sh(checks.import_check(p, rel(3)))
    assert broken.returncode == 1
    assert "ImportError: broken dependency" in broken.stderr


# --- the health probe, against a local HTTP server ---


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    release: str | None = NAME
    seen: list[tuple[str, str | None, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append((self.path, self.headers["Host"], self.headers["User-Agent"]))
        self.send_response(self.status)
        if self.release is not None:
            self.send_header("X-Wsgiship-Release", self.release)
        self.end_headers()
        self.wfile.write(b"body line 1\nbody line 2\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_health_check_passes_when_the_new_release_answers(server, fakebin: Path, sh) -> None:
    port, handler = server
    res = sh(health.health_check(port, "shop.example.com", "/healthz?x=1", 200, NAME, 5),
             env=fake_env(fakebin))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "status=200\n"
    assert handler.seen[0] == ("/healthz?x=1", "shop.example.com", "wsgiship-health")


def test_health_check_accepts_an_app_without_the_header(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.release = None
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 5), env=fake_env(fakebin))
    assert res.returncode == 0 and res.stdout == "status=200\n"


def test_health_check_waits_for_the_new_release(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.release = "older-release"
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.2),
             env=fake_env(fakebin))
    assert res.returncode == 1
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert facts["status"] == "200" and facts["release"] == "older-release"
    assert float(facts["waited"]) >= 0.2
    assert len(handler.seen) > 1  # it kept polling


def test_health_check_fails_on_the_wrong_status(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.status = 500
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.1),
             env=fake_env(fakebin))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == ["status=500", f"release={NAME}"]
    assert lines[2].startswith("waited=")
    assert lines[3:] == ["body line 1", "body line 2"]


def test_health_check_reports_no_answer(fakebin: Path, sh) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.1),
             env=fake_env(fakebin))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == ["status=none", "release=none"]
    assert "ConnectionRefusedError" in res.stdout


# A stand-in uWSGI master with a fifo: it drops the first `c` ("chain reload already running",
# as uWSGI does while it is still finishing the previous chain reload) and, on the next one,
# replaces its workers with ones running in `new`.
BUSY_MASTER = r'''
import os, subprocess, sys
fifo, old, new, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
workers = [subprocess.Popen(["sleep", "30"], cwd=old) for _ in range(n)]
seen = 0
while True:
    with open(fifo) as f:
        for ch in f.read():
            if ch != "c":
                continue
            seen += 1
            if seen == 1:
                print("chain reload already running...", flush=True)
                continue
            for w in workers:
                w.kill(); w.wait()
            workers = [subprocess.Popen(["sleep", "30"], cwd=new) for _ in range(n)]
            print("chain reloading complete", flush=True)
'''


def test_reload_uwsgi_sends_the_chain_reload_again_when_the_master_dropped_it(
        deploy: Path, fakebin: Path, sh) -> None:
    r1 = add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))  # same venv, same ini: a chain reload
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    os.mkfifo(fifo)
    master = subprocess.Popen([sys.executable, "-c", BUSY_MASTER, str(fifo), str(r1), str(r2),
                               "2"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1), wait=15),
                 env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(master.pid)))
        assert res.returncode == 0, res.stderr
        assert res.stdout == "uwsgi=chain\nworkers=2\n"
        assert "systemctl reload wsgiship-app" not in calls(fakebin)
    finally:
        os.killpg(master.pid, signal.SIGKILL)
        out = master.communicate()[0]
    assert out == "chain reload already running...\nchain reloading complete\n"
