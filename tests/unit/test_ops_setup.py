"""wsgiship.ops.setup: which steps `fab setup` runs for a host (steps) and the keys its deploy user
gets (authorized_keys); hosts from a hosts.yaml in tmp_path."""

from __future__ import annotations

import configparser
from collections.abc import Callable
from pathlib import Path

import pytest

from wsgiship import config
from wsgiship.commands import setup as cmds
from wsgiship.commands import venv
from wsgiship.config import Host
from wsgiship.errors import WsgishipError
from wsgiship.layout import CONFIG_DIR, SLOTS, Paths
from wsgiship.ops.setup import authorized_keys, steps
from wsgiship.render import render

K1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 alice@laptop"
K2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQK2 bob@desk"
K3 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK3 carol@ci"

HOSTS = """\
app:
  name: shop
  wsgi: "shop:app"
hosts:
  root1: {host: 10.0.0.1}
  root2: {host: 10.0.0.2, user: root, authorized_keys: [missing.pub]}
  dep1: {host: 10.0.0.3, user: deploy, authorized_keys: [keys/team.pub, keys/ci.pub]}
  dep2: {host: 10.0.0.4, user: deploy, service_manager: supervisor, authorized_keys: [keys/ci.pub]}
  dep3: {host: 10.0.0.5, user: deploy, identity: keys/id_ed25519}
  dep4: {host: 10.0.0.6, user: deploy}
  dep5: {host: 10.0.0.7, user: deploy, authorized_keys: [keys/ci.pub, missing.pub]}
  dep6: {host: 10.0.0.8, user: deploy, app_user: web, remove_default_site: true,
         authorized_keys: [keys/ci.pub]}
  dep7: {host: 10.0.0.9, user: deploy, shared_dirs: [media, data/cache],
         shared_files: [.env], authorized_keys: [keys/ci.pub]}
  dep8: {host: 10.0.0.10, user: deploy, installer: pip, authorized_keys: [keys/ci.pub]}
  root3: {host: 10.0.0.11, installer: uv, build: true, uwsgi_package: pyuwsgi}
  root4: {host: 10.0.0.12, uwsgi_package: uwsgi}
  root5: {host: 10.0.0.13, uwsgi_package: pyuwsgi, build: false}
"""


@pytest.fixture
def host(write_hosts: Callable[..., Path], tmp_path: Path) -> Callable[[str], Host]:
    """The Host for an alias of HOSTS, its key files in tmp_path/keys."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team.pub").write_text(f"# the team\n\n{K1}\n  {K2}  \n")
    (keys / "ci.pub").write_text(K3 + "\n")
    (keys / "id_ed25519").write_text("PRIVATE, never read\n")
    (keys / "id_ed25519.pub").write_text(K1 + "\n")
    inventory = config.load(write_hosts(HOSTS))
    return inventory.host


@pytest.mark.parametrize("alias, keys", [
    ("dep1", (K1, K2, K3)),   # every file, in order; comments and blank lines skipped
    ("dep2", (K3,)),
    ("dep3", (K1,)),          # no authorized_keys: the identity's .pub
    ("dep4", ()),             # neither, and no default key in ~/.ssh
])
def test_authorized_keys(host: Callable[[str], Host], alias: str, keys: tuple[str, ...],
                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert authorized_keys(host(alias)) == keys


def test_without_keys_set_the_deploy_user_gets_your_default_keys(
        host: Callable[[str], Host], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as `wsgiship init --host deploy@web1` writes it: no identity, no authorized_keys; the login
    # offers ~/.ssh's default identities, so those are what the deploy user must accept
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_rsa.pub").write_text(K2 + "\n")
    (ssh / "id_ed25519.pub").write_text(K1 + "\n")
    (ssh / "other.pub").write_text(K3 + "\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert authorized_keys(host("dep4")) == (K1, K2)
    assert authorized_keys(host("dep3")) == (K1,)  # an identity set: only its key


@pytest.mark.parametrize("alias", ["dep5", "root2"])
def test_an_unreadable_key_file_names_the_setting(host: Callable[[str], Host], tmp_path: Path,
                                                  alias: str) -> None:
    with pytest.raises(WsgishipError) as info:
        authorized_keys(host(alias))
    assert str(info.value) == (f"hosts.{alias}.authorized_keys: cannot read {tmp_path / 'missing.pub'}:"
                               " No such file or directory")


ROOT_STEPS = ["os", "packages", "layout", "uv", "service", "site", "nginx"]
USER_STEPS = ["os", "packages", "deploy user", "layout", "uv", "service", "site", "sudo rules",
              "nginx"]


@pytest.mark.parametrize("alias, names", [
    ("root1", ROOT_STEPS),
    ("root2", ROOT_STEPS),    # a root login gets no deploy user: its key files are not read
    ("dep1", USER_STEPS),
    ("dep2", USER_STEPS),
    ("dep4", USER_STEPS),
    ("dep8", [n for n in USER_STEPS if n != "uv"]),  # installer: pip: no uv on the server
    ("root3", ROOT_STEPS),                           # installer: uv
])
def test_step_names(host: Callable[[str], Host], alias: str, names: list[str]) -> None:
    assert [name for name, _ in steps(host(alias))] == names


# the app runs as its own user unless app_user says otherwise; never as the login user
OWN = "wsgiship-shop"


@pytest.mark.parametrize("alias, manager, owner, app_user, remove_default, keys, shared", [
    ("root1", "systemd", "root", OWN, False, None, ((), ())),
    ("dep1", "systemd", "deploy", OWN, False, (K1, K2, K3), ((), ())),
    ("dep2", "supervisor", "deploy", OWN, False, (K3,), ((), ())),
    ("dep6", "systemd", "deploy", "web", True, (K3,), ((), ())),
    ("dep7", "systemd", "deploy", OWN, False, (K3,), (("media", "data/cache"), (".env",))),
])
def test_step_scripts(host: Callable[[str], Host], alias: str, manager: str, owner: str, app_user: str,
                      remove_default: bool, keys: tuple[str, ...] | None,
                      shared: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
    got = dict(steps(host(alias)))
    p = Paths("/srv/shop", "shop", manager)
    assert got["os"] == cmds.check_os()
    # the default uwsgi_package (pyuwsgi, manylinux wheels) needs no compiler on the server
    assert got["packages"] == cmds.packages(("supervisor",) if manager == "supervisor" else (),
                                            compiler=False)
    assert "python3-dev" not in got["packages"] and "build-essential" not in got["packages"]
    assert got["layout"] == cmds.layout(p, owner, app_user, *shared)
    assert got["uv"] == venv.install_uv(p)
    assert got["nginx"] == cmds.nginx(remove_default)
    if keys is None:
        assert "deploy user" not in got and "sudo rules" not in got
    else:
        assert got["deploy user"] == cmds.deploy_user("deploy", keys)
        assert got["sudo rules"] == cmds.sudoers(p, "deploy", app_user)
        assert f"deploy ALL=({app_user}) NOPASSWD: ALL" in got["sudo rules"]
    # the service config and the site are rendered for the manager and the app's user
    rendered = render(host(alias).app, "setup", app_user, "")
    assert got["service"] == cmds.service(p, rendered[f"{CONFIG_DIR}/service"])
    assert got["site"] == cmds.site(p, rendered[f"{CONFIG_DIR}/nginx.conf"])
    assert p.service_file in got["service"]
    check_service_config(rendered[f"{CONFIG_DIR}/service"], manager, app_user)
    if manager == "systemd":  # the template unit's instances, one per slot, enabled
        assert p.service_file == "/etc/systemd/system/wsgiship-shop@.service"
        assert "systemctl enable -q wsgiship-shop@a.service wsgiship-shop@b.service" in got["service"]
    assert "/etc/nginx/sites-available/wsgiship-shop" in got["site"]
    assert "server_name" in got["site"]


def check_service_config(text: str, manager: str, app_user: str) -> None:
    """The rendered service config runs uWSGI as the app's user, once per slot: systemd's
    template unit for instance %i, or one supervisor program for each slot; each runs the
    release its slot link points to."""
    conf = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    conf.optionxform = str  # keys as written (ExecStart, not execstart)
    conf.read_string(text)
    if manager == "systemd":
        assert conf.sections() == ["Unit", "Service", "Install"]
        service = conf["Service"]
        assert service["User"] == app_user
        assert service["Environment"] == "WSGISHIP_SLOT=%i"
        assert service["ExecStart"] == ("/srv/shop/slots/%i/.venv/bin/uwsgi"
                                        " --ini /srv/shop/slots/%i/.wsgiship/uwsgi.ini")
        assert conf["Unit"]["ConditionPathExists"] == "/srv/shop/slots/%i"
        return
    assert conf.sections() == [f"program:wsgiship-shop-{slot}" for slot in SLOTS]
    for slot in SLOTS:
        program = conf[f"program:wsgiship-shop-{slot}"]
        assert program["user"] == app_user
        assert program["environment"] == f'WSGISHIP_SLOT="{slot}"'
        assert f"exec /srv/shop/slots/{slot}/.venv/bin/uwsgi" in program["command"]
        assert program["stdout_logfile"] == f"/srv/shop/shared/log/supervisor-{slot}.log"


def test_the_supervisor_package_is_installed_for_supervisor_only(host: Callable[[str], Host]) -> None:
    assert "supervisor" in dict(steps(host("dep2")))["packages"]
    assert "supervisor" not in dict(steps(host("dep1")))["packages"]


def test_steps_of_a_deploy_user_need_its_keys(host: Callable[[str], Host]) -> None:
    with pytest.raises(WsgishipError, match=r"^hosts\.dep5\.authorized_keys: cannot read "):
        steps(host("dep5"))


@pytest.mark.parametrize("alias, compiler", [
    ("root5", False),   # uWSGI from the pyuwsgi wheel, build false: no compiler
    ("root1", False),   # the default uwsgi_package: pyuwsgi, the wheel
    ("dep8", False),    # installer: pip, the default pyuwsgi wheel
    ("root3", True),    # build: true (with the pyuwsgi wheel)
    ("root4", True),    # uwsgi_package: uwsgi, the sdist
])
def test_a_compiler_only_for_an_app_that_builds(host: Callable[[str], Host], alias: str,
                                                compiler: bool) -> None:
    h = host(alias)
    assert h.app.needs_compiler is compiler
    packages = dict(steps(h))["packages"]
    assert packages == cmds.packages((), compiler=compiler)
    assert ("build-essential" in packages) is compiler and ("python3-dev" in packages) is compiler


@pytest.mark.parametrize("files, compiler", [
    ({"requirements.txt": "flask\nuwsgi==2.0.31\n"}, True),    # the app pins the sdist itself
    ({"requirements.txt": "flask\nUWSGI>=2\n"}, True),
    ({"requirements.txt": "flask\npyuwsgi\n"}, False),          # the wheel: nothing to compile
    ({"requirements.txt": "flask\nuwsgitop\n"}, False),         # another project
    ({"pyproject.toml": '[project]\ndependencies = ["uwsgi"]\n'}, True),
    ({"pyproject.toml": "[project\n"}, False),                  # unparsable: the deploy says so
    ({}, False),
])
def test_a_compiler_for_an_app_that_pins_the_uwsgi_sdist(
        host: Callable[[str], Host], tmp_path: Path, files: dict[str, str],
        compiler: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    h = host("root1")  # uwsgi_package: pyuwsgi (the default), build: false
    assert h.app.needs_compiler is False
    packages = dict(steps(h))["packages"]
    assert ("build-essential" in packages) is compiler and ("python3-dev" in packages) is compiler
