"""wsgiship.commands.{release,venv,services} and wsgiship.shell.

The builders are pure functions returning bash scripts. Besides checking their text, the tests
run the scripts for real on a deploy tree in tmp_path (Paths accepts any deploy_to), with fake
systemctl/nginx/python commands on PATH where the real ones would touch the machine.
"""

from __future__ import annotations

import http.server
import inspect
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wsgiship import shell, source
from wsgiship.commands import release, services, venv
from wsgiship.render import Paths, render

HOSTILE = "x'; rm -rf / #"
NAME = "20250101T000000Z-abc1234"


def line_with(script: str, needle: str) -> str:
    lines = [line for line in script.splitlines() if needle in line]
    assert len(lines) == 1, f"expected one line with {needle!r} in:\n{script}"
    return lines[0]


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
    assert text == "set -euo pipefail\necho a\necho b\n"


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
        services.import_check(p, NAME),
        services.nginx_check(p, NAME),
        services.unit_check(p, NAME, "web1"),
        services.install(p, "deploy", "www-data", ("media",)),
        services.reload_uwsgi(p, NAME, "older", 2, as_other=False),
        services.reload_uwsgi(p, NAME, "older", 2, as_other=True),
        services.reload_nginx(p, NAME, "older"),
        release.force_unlock(p),
        services.health_check(80, "localhost", "/", 200, NAME, 60),
        services.error_log_tail(p),
    ]


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_builders_are_pure(tmp_path: Path, manager: str) -> None:
    p = Paths(str(tmp_path / "d"), "app", manager)
    first = all_builders(p)
    assert all_builders(p) == first
    assert list(tmp_path.iterdir()) == []  # building touched nothing
    for text in first:
        assert text.startswith("set -euo pipefail\n") and text.endswith("\n")
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
    assert shlex.split(text.splitlines()[1]) == ["cd", p.releases]
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
    assert shlex.split(text.splitlines()[1])[:5] == ["if", "grep", "-qF", HOSTILE, "/srv/app/.lock/holder"]


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
    assert dirs == release.layout_dirs(p)


def test_venv_ensure_quotes_python_and_key() -> None:
    text = venv.ensure(Paths("/srv/app", "app"), NAME, HOSTILE, "py " + HOSTILE)
    assert shlex.split(text.splitlines()[1])[0] == f"V=/srv/app/venvs/{HOSTILE};"
    argv = shlex.split(line_with(text, " -m venv "))
    build = shlex.split(argv[argv.index("-c") + 1])  # the build runs in its own bash -c
    assert build[build.index("-m") - 1] == "py " + HOSTILE
    assert shlex.split(line_with(text, "ln -sfn"))[2] == "../../venvs/" + HOSTILE


def test_health_check_passes_each_value_as_one_argument() -> None:
    text = services.health_check(8080, "example.com", "/x?a=1&b=" + HOSTILE, 204, HOSTILE, 9)
    argv = shlex.split(text.removeprefix("set -euo pipefail\n"))
    assert argv[0:2] == ["python3", "-c"]
    assert argv[2] == services.HEALTH_PROBE
    assert argv[3:] == ["8080", "example.com", "/x?a=1&b=" + HOSTILE, "204", HOSTILE, "9"]


def test_error_log_tail_forces_an_integer() -> None:
    text = services.error_log_tail(Paths("/srv/app", "app"), 7)
    assert shlex.split(text.splitlines()[1])[:4] == ["tail", "-n", "7", "/srv/app/shared/log/uwsgi.log"]
    with pytest.raises(ValueError):
        services.error_log_tail(Paths("/srv/app", "app"), "5; rm -rf /")  # type: ignore[arg-type]


# --- services: text ---


def test_install_chowns_shared_only_for_a_separate_app_user() -> None:
    p = Paths("/srv/app", "app")
    same = services.install(p, "deploy", "deploy", ("media", ".env"))
    assert "chown" not in same
    other = services.install(p, "deploy", "www-data", ("media", ".env"))
    assert shlex.split(line_with(other, "chown")) == [
        "$SUDO", "chown", "www-data:www-data", "/srv/app/shared/log", "/srv/app/shared/run",
        "/srv/app/shared/media", "/srv/app/shared/.env"]
    for text in (same, other):
        assert "/etc/systemd/system/wsgiship-app.service" in text
        assert "/srv/app/current/.wsgiship/service" in text
        assert "/srv/app/current/.wsgiship/nginx.conf" in text
        assert "/etc/nginx/sites-enabled/wsgiship-app" in text


def test_install_targets_the_managers_config_file() -> None:
    text = services.install(Paths("/srv/app", "app", "supervisor"), "deploy", "deploy")
    argv = shlex.split(line_with(text, "cmp -s").partition("then")[2].partition("&&")[0])
    assert argv == ["$SUDO", "install", "-m", "644", "/srv/app/current/.wsgiship/service",
                    "/etc/supervisor/conf.d/wsgiship-app.conf"]
    assert "supervisorctl update wsgiship-app" in text
    assert "systemctl" not in text and "/etc/systemd" not in text


def test_install_quotes_the_users_and_shared_names() -> None:
    text = services.install(Paths("/srv/app", "app"), "deploy", "web" + HOSTILE, (HOSTILE,))
    assert shlex.split(line_with(text, "chown")) == [
        "$SUDO", "chown", f"web{HOSTILE}:www-data", "/srv/app/shared/log", "/srv/app/shared/run",
        f"/srv/app/shared/{HOSTILE}"]


def test_import_check_runs_the_release_wsgi_with_its_venv() -> None:
    text = services.import_check(Paths("/srv/app", "app"), NAME)
    assert f"cd /srv/app/releases/{NAME}" in text
    argv = shlex.split(line_with(text, "timeout"))
    assert argv == ["timeout", "300", "./.venv/bin/python", "-c", services.IMPORT_CHECK]
    compile(services.IMPORT_CHECK, "<check>", "exec")


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
    for d in ("releases", "shared/log", "venvs"):
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


@pytest.fixture
def fakebin(tmp_path: Path) -> Path:
    """systemctl, journalctl, nginx and python3 stand-ins; each logs its call to $CALLS."""
    bin_ = tmp_path / "fakebin"
    bin_.mkdir()
    scripts = {
        "systemctl": 'echo "systemctl $*" >> "$CALLS"\n'
                     'case "$1" in\n'
                     '  is-active) if [ "$3" = nginx ]; then [ "${NGINX_ACTIVE:-1}" = 1 ];'
                     ' else [ "${ACTIVE:-0}" = 1 ]; fi ;;\n'
                     '  start) [ "${START_OK:-1}" = 1 ] ;;\n'
                     '  show) echo "${MAINPID:-0}" ;;\n'
                     '  *) exit 0 ;;\n'
                     'esac\n',
        "journalctl": 'echo "journalctl $*" >> "$CALLS"\necho "journal: uwsgi exited"\n',
        "nginx": 'echo "nginx $*" >> "$CALLS"\n'
                 'while [ $# -gt 0 ]; do if [ "$1" = -c ]; then cat "$2";'
                 ' dirname "$2" > "$CALLS.dir"; fi; shift; done\nexit "${NGINX_RC:-0}"\n',
    }
    for name, body in scripts.items():
        (bin_ / name).write_text("#!/bin/bash\n" + body)
        (bin_ / name).chmod(0o755)
    (bin_ / "python3").symlink_to(sys.executable)
    return bin_


def fake_env(fakebin: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{fakebin}:{os.environ['PATH']}", "CALLS": str(fakebin / "calls"), **extra}


def calls(fakebin: Path) -> list[str]:
    path = fakebin / "calls"
    return path.read_text().splitlines() if path.exists() else []


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


def test_reload_uwsgi_starts_a_stopped_service_and_waits_for_its_workers(
        deploy: Path, fakebin: Path, master, sh) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(services.reload_uwsgi(paths(deploy), rel(1), "", 2, wait=5),
             env=fake_env(fakebin, MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    assert calls(fakebin)[:2] == ["systemctl is-active -q wsgiship-app",
                                  "systemctl start wsgiship-app"]
    assert "systemctl show -p MainPID --value wsgiship-app" in calls(fakebin)


def test_reload_uwsgi_reloads_a_running_service_gracefully(deploy: Path, fakebin: Path, master,
                                                           sh) -> None:
    add_release(deploy, rel(1), venv_key="a")
    r2 = add_release(deploy, rel(2), venv_key="b")  # a new venv: no chain reload
    pid = master(r2, 2)
    res = sh(services.reload_uwsgi(paths(deploy), rel(2), rel(1), 2, wait=5),
             env=fake_env(fakebin, ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    assert "systemctl reload wsgiship-app" in calls(fakebin)
    assert "systemctl start wsgiship-app" not in calls(fakebin)


def test_reload_uwsgi_fails_while_workers_serve_the_old_release(deploy: Path, fakebin: Path,
                                                               master, sh) -> None:
    r1 = add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    (deploy / "shared" / "log" / "uwsgi.log").write_text("worker 1 buried after 1 seconds\n")
    pid = master(r1, 2)
    res = sh(services.reload_uwsgi(paths(deploy), rel(2), rel(1), 2, wait=0),
             env=fake_env(fakebin, ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert "worker 1 buried" in res.stderr


def test_reload_uwsgi_failure_to_start_shows_journal_and_app_log(deploy: Path, fakebin: Path,
                                                                 sh) -> None:
    add_release(deploy, rel(1))
    (deploy / "shared" / "log" / "uwsgi.log").write_text("ImportError: no module named hello\n")
    res = sh(services.reload_uwsgi(paths(deploy), rel(1), "", 2, wait=1),
             env=fake_env(fakebin, START_OK="0"))
    assert res.returncode == 1
    assert "journal: uwsgi exited" in res.stderr
    assert "ImportError: no module named hello" in res.stderr
    assert "journalctl -u wsgiship-app -n 20 --no-pager" in calls(fakebin)


def test_reload_uwsgi_quotes_release_names() -> None:
    text = services.reload_uwsgi(Paths("/srv/app", "app"), HOSTILE, "old" + HOSTILE, 2)
    assert shlex.split(line_with(text, "NEW=")) == [
        f"NEW=/srv/app/releases/{HOSTILE};", f"OLD=/srv/app/releases/old{HOSTILE}"]


def site(root: Path, name: str, text: str) -> None:
    r = add_release(root, name)
    (r / ".wsgiship" / "nginx.conf").write_text(text)


SITE = "server {\n    listen 80;\n}\n"


def test_reload_nginx_skips_an_unchanged_site(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(1), "# release 1\n" + SITE)
    site(deploy, rel(2), "# release 2\n" + SITE)  # comments aside, the same
    res = sh(services.reload_nginx(paths(deploy), rel(2), rel(1)), env=fake_env(fakebin))
    assert res.returncode == 0 and res.stdout == "nginx=unchanged\n"
    assert not any(c.startswith(("nginx", "systemctl reload")) for c in calls(fakebin))


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
    res = sh(services.reload_nginx(paths(deploy), rel(2), previous, force=force),
             env=fake_env(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "nginx=reloaded\n"
    assert calls(fakebin)[-3:] == ["nginx -t -q", "systemctl is-active -q nginx",
                                   "systemctl reload nginx"]


def test_reload_nginx_starts_a_stopped_nginx(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(1), SITE)
    site(deploy, rel(2), SITE)
    res = sh(services.reload_nginx(paths(deploy), rel(2), rel(1)),
             env=fake_env(fakebin, NGINX_ACTIVE="0"))
    assert res.returncode == 0 and res.stdout == "nginx=started\n"
    assert calls(fakebin)[-1] == "systemctl start nginx"


def test_reload_nginx_stops_on_a_broken_config(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(2), SITE)
    res = sh(services.reload_nginx(paths(deploy), rel(2), ""), env=fake_env(fakebin, NGINX_RC="1"))
    assert res.returncode == 1
    assert calls(fakebin)[-1] == "nginx -t -q"


def test_nginx_check_wraps_the_site_in_a_throwaway_config(deploy: Path, fakebin: Path,
                                                          sh) -> None:
    res = sh(services.nginx_check(paths(deploy), NAME), env=fake_env(fakebin))
    assert res.returncode == 0, res.stderr
    site_path = f"{deploy}/releases/{NAME}/.wsgiship/nginx.conf"
    assert res.stdout.splitlines() == [
        "include /etc/nginx/modules-enabled/*.conf;",
        "events {}",
        f"http {{ include /etc/nginx/mime.types; include {site_path}; }}",
    ]
    tmpdir = Path((fakebin / "calls.dir").read_text().strip())
    assert not tmpdir.exists()  # removed on exit
    res = sh(services.nginx_check(paths(deploy), NAME), env=fake_env(fakebin, NGINX_RC="1"))
    assert res.returncode == 1


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
    ok = sh(services.import_check(p, rel(1)))
    assert ok.returncode == 0, ok.stderr
    # `application` wraps the app, so a None app still defines it: the check passes
    assert sh(services.import_check(p, rel(2))).returncode == 0
    broken = sh(services.import_check(p, rel(3)))
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
    res = sh(services.health_check(port, "shop.example.com", "/healthz?x=1", 200, NAME, 5),
             env=fake_env(fakebin))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "status=200\n"
    assert handler.seen[0] == ("/healthz?x=1", "shop.example.com", "wsgiship-health")


def test_health_check_accepts_an_app_without_the_header(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.release = None
    res = sh(services.health_check(port, "localhost", "/", 200, NAME, 5), env=fake_env(fakebin))
    assert res.returncode == 0 and res.stdout == "status=200\n"


def test_health_check_waits_for_the_new_release(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.release = "older-release"
    res = sh(services.health_check(port, "localhost", "/", 200, NAME, 0.2),
             env=fake_env(fakebin))
    assert res.returncode == 1
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert facts["status"] == "200" and facts["release"] == "older-release"
    assert float(facts["waited"]) >= 0.2
    assert len(handler.seen) > 1  # it kept polling


def test_health_check_fails_on_the_wrong_status(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.status = 500
    res = sh(services.health_check(port, "localhost", "/", 200, NAME, 0.1),
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
    res = sh(services.health_check(port, "localhost", "/", 200, NAME, 0.1),
             env=fake_env(fakebin))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == ["status=none", "release=none"]
    assert "ConnectionRefusedError" in res.stdout
