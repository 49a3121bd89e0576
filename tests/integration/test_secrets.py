"""Secrets on the real test host: `fab env` (listed masked, set, unset, --apply under load and a
failing --apply), `fab put`, `fab exec --env`; done by the restricted deploy user `fab setup`
leaves (no sudo of its own), a value never shown, never on a command line (`ps`), never in a log,
and nothing new for root to read or run."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import testhost as th
from conftest import Project, make_project
from test_escalation import fingerprint

from bench.loadgen import Load

TOKEN = "tok9f3ac2e1"  # in every secret: must never appear in any output or log
SECRET = f"{TOKEN} ünï $HOME `id` 'q' \"dq\" #hash"
PADDED = f"  {TOKEN}-padded  "

APP = '''import os

from flask import Flask

if os.environ.get("CRASH_ON_START") == "1":
    raise RuntimeError("asked to crash")

app = Flask(__name__)


@app.route("/")
def index() -> str:
    return "Hello World!"


@app.route("/env/<key>")
def env(key: str) -> str:
    return os.environ.get(key, "<unset>")
'''


@pytest.fixture(scope="module")
def app(host: th.TestHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """An app set up by root and deployed by the deploy user, which has no sudo but the rules
    fab setup installs (restored afterwards: the host is the session's)."""
    p = make_project(host, tmp_path_factory.mktemp("secrets"), shared_files=[".env", "creds.json"],
                     shared_dirs=["media"], env={"GREETING": "hi"})
    (p.app_dir / "hello.py").write_text(APP)
    p.must(p.fab("setup", "-H", "t"))
    host.run("mv /etc/sudoers.d/deploy /root/deploy.sudoers")
    try:
        assert host.run("sudo -n true", user="deploy", check=False).returncode != 0
        p.must(p.deploy())
        yield p
    finally:
        host.run("mv /root/deploy.sudoers /etc/sudoers.d/deploy")


def said(res: subprocess.CompletedProcess[str]) -> str:
    """All a command printed; it must never hold a secret, nor a traceback of its own (the
    app's, in the app log it shows as `  | ` lines, may)."""
    text = res.stdout + res.stderr
    assert TOKEN not in text, text
    assert not [line for line in text.splitlines()
                if "Traceback" in line and not line.startswith("  | ")], text
    return text


def env_file(p: Project) -> tuple[str, str]:
    """owner:group mode of the shared .env, and its content (read as root)."""
    meta = p.remote(f"stat -c '%U:%G %a' {p.deploy_to}/shared/.env").strip()
    return meta, p.remote(f"cat {p.deploy_to}/shared/.env")


def test_set_list_unset_never_show_a_value(app: Project) -> None:
    p = app
    out = said(p.fab("env", "-H", "t", "--set", f"SECRET_TOKEN={SECRET}", "--set",
                     f"PADDED={PADDED}", "--set", "PLAIN=1"))
    assert "SECRET_TOKEN set, PADDED set, PLAIN set" in out, out
    assert "not applied yet" in out, out
    meta, content = env_file(p)
    assert meta == f"wsgiship-{p.name}:www-data 600"
    assert f"SECRET_TOKEN={SECRET}\n" in content and f"PADDED='{PADDED}'\n" in content
    listed = said(p.fab("env", "-H", "t"))
    assert re.search(rf"SECRET_TOKEN=\*\*\*\* +{len(SECRET)} chars +shared/\.env", listed), listed
    assert re.search(rf"PADDED=\*\*\*\* +{len(PADDED)} chars +shared/\.env", listed), listed
    assert re.search(r"GREETING=\*\*\*\* +2 chars +hosts\.yaml env", listed), listed
    # the same name again: changed in place, the others kept; then gone
    out = said(p.fab("env", "-H", "t", "--set", "PLAIN=2", "--unset", "PADDED", "--unset", "NOPE"))
    assert "PLAIN changed, PADDED unset, NOPE was not set" in out, out
    meta, content = env_file(p)
    assert meta == f"wsgiship-{p.name}:www-data 600"
    assert "PADDED" not in content and "PLAIN=2\n" in content and TOKEN in content
    # mistakes: one clear line, nothing changed
    for args, words in ((["--set", f"BAD-NAME={TOKEN}"], "not a variable name"),
                        (["--set", f"K={TOKEN}\nX=1"], "line break"),
                        (["--set", "UNSET_HERE_XYZ"], "not set in your environment"),
                        (["--set", "A=1", "--unset", "A"], "both name A")):
        res = p.fab("env", "-H", "t", *args)
        assert res.returncode != 0 and words in res.stderr, res.stderr
        assert TOKEN not in res.stdout and "Traceback" not in res.stderr
    assert env_file(p)[1] == content
    # no value in the deploy log, the jobs' logs, a release: only in the shared .env
    found = p.remote(f"grep -rlF {TOKEN} {p.deploy_to} || true").split()
    assert found == [f"{p.deploy_to}/shared/.env"], found


def test_apply_restarts_the_live_release_under_load(app: Project) -> None:
    p = app
    said(p.fab("env", "-H", "t", "--set", "NEWVAR=v1"))
    assert p.get("/env/NEWVAR")[1] == "<unset>"  # not before the next start
    release = p.current()
    with Load(p.http_port, connections=8, max_seconds=90, max_requests=300_000) as load:
        time.sleep(1)
        res = p.fab("env", "-H", "t", "--set", "NEWVAR=v2", "--apply")
        time.sleep(1)
    out = said(res)
    assert res.returncode == 0, out
    assert re.search(r"start\s+[\d.]+s\s+slot [ab] started", out), out
    assert re.search(r"retire\s+[\d.]+s\s+slot [ab] stopping gracefully", out), out
    assert f"restarted {release}" in out, out
    assert not load.result.failed, [s.body for s in load.result.failed[:5]]
    assert p.get("/env/NEWVAR")[1] == "v2"
    assert p.get("/env/SECRET_TOKEN")[1] == SECRET
    assert p.current() == release
    time.sleep(2)
    active = p.remote(f"systemctl list-units --no-legend --state=active 'wsgiship-{p.name}@*'")
    assert len(re.findall(r"@[ab]\.service", active)) == 1, active
    log = p.remote(f"tail -n1 {p.deploy_to}/deploys.log")
    assert '"action": "env"' in log and '"NEWVAR"' in log and "v2" not in log


def test_a_failing_apply_leaves_the_running_one_serving(app: Project) -> None:
    p = app
    before = p.current()
    try:
        res = p.fab("env", "-H", "t", "--set", "CRASH_ON_START=1", "--apply")
        text = said(res)
        assert res.returncode != 0, text
        assert "never served a request" in text and "asked to crash" in text, text
        assert p.get("/")[:2] == (200, "Hello World!")
        assert p.get("/env/NEWVAR")[1] == "v2"  # the instance that ran goes on
        assert p.current() == before and not p.lock_exists()
    finally:
        said(p.fab("env", "-H", "t", "--unset", "CRASH_ON_START"))


def test_put_writes_the_apps_file_and_refuses_ways_out(app: Project, tmp_path) -> None:
    p, user = app, f"wsgiship-{app.name}"
    creds = tmp_path / "creds.json"
    creds.write_text(f'{{"key": "{TOKEN}"}}\n')
    out = said(p.fab("put", "-H", "t", "--local", str(creds), "--remote", "shared/creds.json"))
    assert "releases link creds.json to it" in out, out
    target = f"{p.deploy_to}/shared/creds.json"
    assert p.remote(f"stat -c '%U:%G %a' {target}").strip() == f"{user}:www-data 600"
    digest = hashlib.sha256(creds.read_bytes()).hexdigest()
    assert p.remote(f"sha256sum < {target}").split()[0] == digest
    # a file that is not the app's (root's here) is not written through it
    p.remote(f"chown root:root {target}")
    try:
        res = p.fab("put", "-H", "t", "--local", str(creds), "--remote", "shared/creds.json")
        assert res.returncode != 0 and "not writable by the app's user" in said(res), res.stderr
    finally:
        p.remote(f"chown {user}:www-data {target}")
    assert p.remote(f"sha256sum < {target}").split()[0] == digest
    # into the app's own dir: created there by the app's user
    said(p.fab("put", "-H", "t", "--local", str(creds), "--remote", "shared/media/k.json"))
    assert p.remote(f"stat -c '%U %a' {p.deploy_to}/shared/media/k.json").split() == [user, "600"]
    # a new file right in shared/ needs root to make it the app's: the restricted user is told
    res = p.fab("put", "-H", "t", "--local", str(creds), "--remote", "shared/new.json")
    assert res.returncode != 0 and "run fab setup" in said(res), res.stderr
    # links planted on the server (by the deploy user, by the app) are refused
    p.host.run(f"ln -s /etc/cron.d/pwned {p.deploy_to}/shared/planted", user="deploy")
    p.host.run(f"sudo -n -u {user} ln -s /etc {p.deploy_to}/shared/media/etc", user="deploy")
    try:
        for remote in ("shared/planted", "shared/media/etc/pwned"):
            res = p.fab("put", "-H", "t", "--local", str(creds), "--remote", remote)
            assert res.returncode != 0 and "is a symbolic link" in said(res), res.stderr
        for remote in ("shared/../x", "/etc/x", "shared/log/x", "shared/"):
            res = p.fab("put", "-H", "t", "--local", str(creds), "--remote", remote)
            assert res.returncode != 0 and res.stderr.startswith("error: --remote"), res.stderr
    finally:
        p.host.run(f"rm -f {p.deploy_to}/shared/planted {p.deploy_to}/shared/media/etc")
    assert p.remote("ls /etc/cron.d/pwned 2>&1 || true").strip().endswith("No such file or directory")


def test_exec_env_reaches_the_command_alone(app: Project) -> None:
    p = app
    # (the command compares a hash: the secret itself stays off its command line)
    show = ("import hashlib, os; print(hashlib.sha256(os.environ['FOO'].encode()).hexdigest(),"
            " os.environ.get('NEWVAR'), os.environ.get('LOCAL'), os.environ.get('NOT_PASSED'))")
    res = p.fab("exec", "-H", "t", "--env", f"FOO={SECRET}", "--env", "NEWVAR=over", "--env",
                "LOCAL", "--", "python", "-c", show, env={"LOCAL": "mine", "NOT_PASSED": "x"})
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert said(res).splitlines()[-1] == f"{digest} over mine None", res.stdout + res.stderr
    assert res.returncode == 0
    # its file is gone once the command started
    assert p.remote("ls /tmp | grep -c wsgiship-env || true").strip() == "0"


def test_values_never_appear_on_a_command_line(app: Project, tmp_path) -> None:
    p = app
    seen: list[str] = []
    watch = ("for i in $(seq 1 400); do ps -eo args; sleep 0.02; done"
             f" | grep -F {shlex.quote(TOKEN)} | grep -v grep | sort -u || true")
    watcher = threading.Thread(target=lambda: seen.extend(p.remote(watch).splitlines()))
    watcher.start()
    time.sleep(0.5)
    local = tmp_path / "f"
    local.write_text(TOKEN)
    said(p.fab("env", "-H", "t", "--set", f"PS_CHECK={SECRET}"))
    said(p.fab("put", "-H", "t", "--local", str(local), "--remote", "shared/creds.json"))
    said(p.fab("exec", "-H", "t", "--env", f"FOO={SECRET}", "--", "sleep", "2"))
    # the watch sees what is on a command line: an argument is
    said(p.fab("exec", "-H", "t", "--", "sh", "-c", "sleep 1.5", f"{TOKEN}-visible"))
    watcher.join()
    assert seen and all(f"{TOKEN}-visible" in line for line in seen), seen


def test_nothing_new_for_root(app: Project) -> None:
    p = app
    before = fingerprint(p.host)
    rules = p.remote(f"cat /etc/sudoers.d/wsgiship-{p.name}")
    said(p.fab("env", "-H", "t", "--set", "ROOTCHECK=1", "--apply"))
    res = p.fab("put", "-H", "t", "--local", "/etc/hostname", "--remote", "shared/sudoers")
    assert res.returncode != 0
    assert fingerprint(p.host) == before
    assert p.remote(f"cat /etc/sudoers.d/wsgiship-{p.name}") == rules
    # no value in a log: sudo's (the journal), nginx's, the jobs', a temporary file
    logged = p.remote(f"{{ journalctl --no-pager; grep -rF {TOKEN} /var/log /tmp {p.deploy_to}"
                      f" --exclude-dir=shared; }} | grep -F {TOKEN} | grep -vF {TOKEN}-visible"
                      " || true")
    assert logged == "", logged
    # what the deploy user made for the app is the app's alone: not root's, not a link
    for name in (".env", "creds.json"):
        owner = p.remote(f"stat -c '%U %a %F' {p.deploy_to}/shared/{name}").split()
        assert owner[:2] == [f"wsgiship-{p.name}", "600"] and owner[2] == "regular", (name, owner)


def test_set_with_a_sudo_password(project) -> None:
    """With --prompt-for-sudo-password the whole script runs under one sudo: the password goes
    first on stdin, then the value."""
    p = project(shared_files=[".env"])
    (p.app_dir / "hello.py").write_text(APP)
    p.write(user="deploypw")
    p.must(p.fab("--prompt-for-sudo-password", "deploy", "-H", "t", input="testpw\n"))
    res = p.fab("--prompt-for-sudo-password", "env", "-H", "t", "--set", f"PW_SECRET={SECRET}",
                "--apply", input="testpw\n")
    assert res.returncode == 0, said(res)
    said(res)
    assert p.get("/env/PW_SECRET")[1] == SECRET
    assert "testpw" not in env_file(p)[1]
