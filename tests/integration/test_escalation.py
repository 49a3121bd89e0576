"""Least privilege, tried as an attacker would on a real server after `fab setup`: the deploy
user (restricted sudo) and the app's user try to become root or to change what root reads;
every protected file is checked unchanged (hash, owner, mode)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

import pytest
import testhost as th
from conftest import Project, make_project

# what root reads or runs, and must never change under the deploy user or the app
PROTECTED = ("/etc/shadow", "/etc/sudoers", "/etc/passwd", "/etc/nginx/nginx.conf")
PROTECTED_DIRS = ("/etc", "/etc/sudoers.d", "/etc/nginx/sites-enabled", "/etc/systemd/system")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[th.TestHost]:
    """A host where `deploy` has no sudo of its own: only what `fab setup` grants."""
    host = th.boot("priv", tmp_path_factory.mktemp("priv"))
    try:
        host.run("rm -f /etc/sudoers.d/deploy")
        assert host.run("sudo -n true", user="deploy", check=False).returncode != 0
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def app(server: th.TestHost, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """An app set up by root and deployed by the restricted deploy user."""
    p = make_project(server, tmp_path_factory.mktemp("app"), shared_dirs=["media"],
                     shared_files=["secret.txt", ".env"])
    p.must(p.fab("setup", "-H", "t"))
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "Hello World!")
    return p


def fingerprint(host: th.TestHost) -> str:
    """Hash, owner and mode of every protected file, and the protected dirs' listings."""
    files = " ".join(PROTECTED)
    dirs = " ".join(PROTECTED_DIRS)
    return host.run(f"sha256sum {files}; stat -c '%n %U:%G %a' {files} {dirs};"
                    f" for d in {dirs}; do ls -la --time-style=+ \"$d\" | sort; done").stdout


def as_user(host: th.TestHost, user: str, command: str) -> tuple[int, str]:
    res = host.run(command, user=user, check=False)
    return res.returncode, res.stdout + res.stderr


def as_app(p: Project, command: str) -> tuple[int, str]:
    """Run a command as the app's user (the deploy user may; that is not root)."""
    return as_user(p.host, "deploy", f"sudo -n -u wsgiship-{p.name} -- sh -c {shlex.quote(command)}")


def test_the_app_runs_as_its_own_user_and_cannot_write_its_code(app: Project) -> None:
    p, user = app, f"wsgiship-{app.name}"
    assert p.remote(f"systemctl show -p User --value wsgiship-{p.name}@a").strip() == user
    assert p.remote("ps -o user:32= -C uwsgi | sort -u").split() == [user]
    release = f"{p.deploy_to}/releases/{p.current()}"
    venv = p.remote(f"readlink -f {release}/.venv").strip()
    for target in (f"{release}/hello.py", f"{release}/.wsgiship/uwsgi.ini",
                   f"{release}/.wsgiship/wsgi.py", f"{venv}/bin/activate",
                   f"/etc/nginx/sites-available/wsgiship-{p.name}",
                   f"/etc/systemd/system/wsgiship-{p.name}@.service"):
        code, out = as_app(p, f"echo x >> {target}")
        assert code != 0, (target, out)
    for new in (f"{release}/planted.py", f"{venv}/lib/planted.pth", f"{p.deploy_to}/current2"):
        code, out = as_app(p, f"touch {new}")
        assert code != 0, (new, out)
    # what it may write: its shared dirs and files, its log
    for ok in (f"{p.deploy_to}/shared/media/upload.bin", f"{p.deploy_to}/shared/secret.txt",
               f"{p.deploy_to}/shared/log/extra.log"):
        code, out = as_app(p, f"echo x >> {ok}")
        assert code == 0, (ok, out)
    assert p.remote(f"stat -c '%U %a' {p.deploy_to}/shared/secret.txt").split() == [user, "600"]


def test_every_sudo_rule_refuses_an_unexpected_argument(app: Project) -> None:
    p = app
    rules = p.remote(f"cat /etc/sudoers.d/wsgiship-{p.name}")
    commands = [c.strip().rstrip(",\\").strip() for c in rules.split("=", 1)[1]
                .split("\ndeploy ALL=")[0].replace("\\\n", "").split(",")]
    assert len(commands) >= 5 and all(c.startswith("/usr/") for c in commands), commands
    before = fingerprint(p.host)
    for command in commands:
        for variant in (f"{command} --help", f"{command} x", command.rsplit(" ", 1)[0] + " -h"):
            code, out = as_user(p.host, "deploy", f"sudo -n {variant}")
            assert code != 0 and "sudo:" in out, (variant, out)
    for other in ("/usr/bin/systemctl reload nginx", "/usr/bin/systemctl restart nginx",
                  f"/usr/bin/ln -sfn /tmp/x /etc/nginx/sites-available/wsgiship-{p.name}",
                  "/usr/bin/install -m 644 /tmp/x /etc/systemd/system/x.service",
                  "/usr/bin/bash", "/usr/bin/true"):
        code, out = as_user(p.host, "deploy", f"sudo -n {other}")
        assert code != 0, (other, out)
    # the app's user has no sudo at all
    code, out = as_app(p, "sudo -n true")
    assert code != 0, out
    assert fingerprint(p.host) == before


SITE_TEMPLATE = """server {{
    listen {{{{ app.http_port }}}};
    server_name {{{{ app.server_name }}}};
    {extra}
    location / {{
        include /etc/nginx/uwsgi_params;
        uwsgi_pass unix:{{{{ socket }}}};
    }}
}}
"""


@pytest.mark.parametrize("extra", [
    "access_log /etc/sudoers.d/pwned;",
    "include /etc/shadow;",
    "error_log /etc/cron.d/pwned debug;",
], ids=["log-into-sudoers", "include-shadow", "log-into-cron"])
def test_a_hostile_nginx_site_never_reaches_root(app: Project, tmp_path, extra: str) -> None:
    p = app
    before, good = fingerprint(p.host), p.current()
    shadow_line = p.remote("head -n1 /etc/shadow").strip()
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "nginx.conf.j2").write_text(SITE_TEMPLATE.format(extra=extra))
    p.settings["templates"] = str(templates)
    p.write()
    try:
        res = p.deploy()
    finally:
        del p.settings["templates"]
        p.write()
    assert res.returncode != 0
    assert "run fab setup" in res.stderr, res.stderr
    assert shadow_line not in res.stdout + res.stderr
    p.assert_still_serving(good)
    # the deploy user writes a release's site itself and pokes nginx with what sudo allows
    site = f"{p.deploy_to}/current/.wsgiship/nginx.conf"
    p.host.run(f"cp -p {site} /tmp/site.bak; chmod u+w {site}; printf '%s\\n'"
               f" {shlex.quote('server { ' + extra + ' }')} >> {site}", user="deploy")
    try:
        for command in ("sudo -n /usr/sbin/nginx -t -q", "sudo -n /usr/bin/systemctl start nginx",
                        "sudo -n /usr/bin/systemctl reload nginx"):
            as_user(p.host, "deploy", command)
    finally:
        p.host.run(f"cp -p /tmp/site.bak {site}", user="deploy")
    assert p.remote("test -e /etc/sudoers.d/pwned || test -e /etc/cron.d/pwned && echo found"
                    " || echo none").strip() == "none"
    assert fingerprint(p.host) == before
    assert p.get("/")[:2] == (200, "Hello World!")


def test_symlinks_planted_before_the_next_setup_are_refused(app: Project) -> None:
    p, host = app, app.host
    before = fingerprint(host)
    home = host.run("getent passwd deploy | cut -d: -f6").stdout.strip()
    host.run(f"cp {home}/.ssh/authorized_keys /tmp/keys.bak && rm {home}/.ssh/authorized_keys"
             f" && ln -s /etc/shadow {home}/.ssh/authorized_keys", user="deploy")
    try:
        res = p.fab("setup", "-H", "t")
        assert fingerprint(host) == before, res.stdout + res.stderr
        assert res.returncode != 0  # writing the keys as the deploy user hit /etc/shadow
    finally:  # (as root: the planted link locks the deploy user out of SSH meanwhile)
        host.run(f"rm -f {home}/.ssh/authorized_keys && cp /tmp/keys.bak {home}/.ssh/authorized_keys"
                 f" && chown deploy: {home}/.ssh/authorized_keys")
    for planted in ("shared", "shared/log", "shared/media", "releases"):
        path = f"{p.deploy_to}/{planted}"
        # the deploy user owns the dirs these are in: it can swap any of them for a link
        host.run(f"mv {path} {path}.real && ln -s /etc {path}", user="deploy")
        try:
            res = p.fab("setup", "-H", "t")
            assert res.returncode != 0, res.stdout
            assert re.search(rf"refusing: {re.escape(path)} is a symbolic link", res.stderr), res.stderr
            assert fingerprint(host) == before
        finally:
            host.run(f"rm {path} && mv {path}.real {path}")
    # with nothing planted, setup is content again and the site still serves
    out = p.must(p.fab("setup", "-H", "t"))
    assert "nothing to change" in out, out
    assert fingerprint(host) == before
    assert p.get("/")[:2] == (200, "Hello World!")


def test_a_restricted_deploy_user_deploys_reads_logs_runs_exec_and_hooks(app: Project) -> None:
    p = app
    p.settings["hooks"] = {"before_switch": ["id -un > media/hook-user"]}
    p.write()
    p.set_text("restricted")
    try:
        out = p.must(p.deploy())
    finally:
        del p.settings["hooks"]
        p.write()
    assert "stopping gracefully" in out, out
    assert p.get("/")[:2] == (200, "restricted")
    user = f"wsgiship-{p.name}"
    assert p.remote(f"cat {p.deploy_to}/shared/media/hook-user").strip() == user
    assert p.must(p.fab("exec", "-H", "t", "--", "id", "-un")).strip().endswith(user)
    logs = p.fab("logs", "-H", "t", "--source", "app", "--lines", "5")
    assert logs.returncode == 0, logs.stderr
    p.must(p.fab("rollback", "-H", "t"))
    assert p.get("/")[:2] == (200, "Hello World!")


def test_remote_text_never_drives_the_terminal(app: Project) -> None:
    p = app
    evil = ('{"action": "deploy", "by": "eve\\u001b]52;c;cHduZWQ=\\u0007",'
            ' "release": "29990101T000000Z-evil"}')
    p.host.run(f"printf '%s\\n' {shlex.quote(evil)} >> {p.deploy_to}/deploys.log", user="deploy")
    p.host.run(f"mkdir -p {p.deploy_to}/releases/29990101T000000Z-evil && printf"
               f" 'bad\\033[2Jreason\\n' > {p.deploy_to}/releases/29990101T000000Z-evil/FAILED",
               user="deploy")
    try:
        res = p.fab("releases", "-H", "t")
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout
        assert "\\x1b[2J" in res.stdout and "eve\\x1b]52" in res.stdout
    finally:
        p.host.run(f"rm -rf {p.deploy_to}/releases/29990101T000000Z-evil", user="deploy")


def test_root_login_gives_code_and_env_fixed_modes(project) -> None:
    p = project(env={"API_TOKEN": "s3cret"}, shared_files=["local.cfg"])
    (p.app_dir / "local.cfg").write_text("seeded\n")
    (p.app_dir / "local.cfg").chmod(0o666)
    (p.app_dir / "hello.py").chmod(0o666)
    p.write(user="root")
    p.must(p.deploy())
    release = f"{p.deploy_to}/current"
    modes = dict(line.split() for line in p.remote(
        f"cd -P {release} && stat -c '%n %a' hello.py .wsgiship/env .wsgiship"
        f" {p.deploy_to}/shared/local.cfg").splitlines())
    assert modes["hello.py"] == "640"
    assert modes[".wsgiship/env"] == "640"
    assert modes[".wsgiship"] in ("750", "2750")  # setgid: the group stays www-data
    assert modes[f"{p.deploy_to}/shared/local.cfg"] in ("640", "600")
    assert p.remote(f"stat -c %U {p.deploy_to}/shared/local.cfg").strip() == f"wsgiship-{p.name}"
    assert p.remote(f"systemctl show -p User --value wsgiship-{p.name}@a").strip() == f"wsgiship-{p.name}"
