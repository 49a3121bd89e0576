"""wsgiship init's files: never over an existing one, always a hosts.yaml wsgiship loads, the
host entry from --host, clear errors for bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from init_apps import django_project, flask_factory, flask_module, initialized, plain_wsgi, src_layout, write

from wsgiship import config
from wsgiship.errors import InitError
from wsgiship.init import init_app
from wsgiship.init.plan import parse_host, sanitize_name
from wsgiship.init.render import FABFILE, scalar

LAYOUTS: dict[str, Callable[[Path], Path]] = {
    "django": django_project, "flask-factory": flask_factory, "flask-module": flask_module,
    "src": src_layout, "plain": plain_wsgi,
    "nothing-found": lambda root: write(root, {"util.py": "def helper():\n    pass\n"}),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("host", ["", "deploy@10.0.0.5:2222", "web3.example.org"])
def test_every_hosts_yaml_written_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        layout: str, host: str) -> None:
    root = LAYOUTS[layout](tmp_path / "my app")
    init_app(root, host=host)
    monkeypatch.setenv(config.HOSTS_ENV, str(root / "hosts.yaml"))
    inv = config.load()
    (alias,) = inv.hosts
    target = inv.host(alias)
    assert target.app.source == root.resolve()
    assert target.app.name == {"flask-factory": "blog", "src": "acme-site"}.get(layout, "my-app")
    assert (root / "fabfile.py").read_text() == FABFILE


def test_the_fabfile_is_wsgiships_tasks(tmp_path: Path) -> None:
    init_app(flask_module(tmp_path / "a"))
    text = (tmp_path / "a" / "fabfile.py").read_text()
    assert text.startswith('"""') and len(text.split('"""')[1].splitlines()) == 1
    assert "from wsgiship.tasks import ns" in text
    compile(text, "fabfile.py", "exec")


def test_an_existing_hosts_yaml_is_left_as_it_is(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "a")
    mine = "# mine\napp: {name: mine, wsgi: app:app}\nhosts:\n  prod: {host: prod.example.com}\n"
    (root / "hosts.yaml").write_text(mine)
    report = init_app(root)
    assert (root / "hosts.yaml").read_text() == mine
    assert report.written == ["fabfile.py"] and report.kept == ["hosts.yaml"]
    lines = report.lines(cwd=root)
    assert "hosts.yaml exists, left as is (the guesses above are not in it)" in lines
    assert lines[-2:] == ["  fab setup -H prod", "  fab deploy -H prod"]  # its own alias


def test_an_existing_fabfile_is_left_as_it_is_and_named(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "a")
    (root / "fabfile.py").write_text("from fabric import task\n")
    report = init_app(root)
    assert (root / "fabfile.py").read_text() == "from fabric import task\n"
    lines = report.lines()
    assert "fabfile.py exists, left as is" in lines
    assert "hint: fabfile.py does not load wsgiship's tasks: add `from wsgiship.tasks import ns` " \
           "to it" in lines



def test_a_dangling_link_counts_as_a_file_and_nothing_is_written_through_it(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "a")
    (root / "hosts.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    assert init_app(root).kept == ["hosts.yaml"]
    assert not (tmp_path / "elsewhere.yaml").exists()


def test_nothing_wsgi_like_writes_change_me_and_says_so(tmp_path: Path) -> None:
    root = LAYOUTS["nothing-found"](tmp_path / "lib")
    report, text, _, inv = initialized(root)
    assert inv.host("web1").app.wsgi == "CHANGE_ME:app"
    assert "# CHANGE_ME: no WSGI callable was found." in text
    assert "wsgi: CHANGE_ME:app (no WSGI callable found: set app.wsgi to module:callable)" \
        in report.lines()
    assert "set app.wsgi to module:callable" in report.problem


@pytest.mark.parametrize(("setup", "options", "message"), [
    (lambda p: p, {}, "no such directory"),
    (lambda p: (p.write_text("x"), p)[1], {}, "not a directory"),
    (lambda p: (p.mkdir(), p)[1], {}, "nothing WSGI-like here"),
    (flask_module, {"host": "me@@host"}, "--host 'me@@host': expected [USER@]HOST[:PORT]"),
    (flask_module, {"host": "web1:ssh"}, "--host 'web1:ssh': expected"),
    (flask_module, {"name": "my app"}, "--name 'my app': expected letters, digits"),
    (flask_module, {"server_name": "a;b"}, "--server-name 'a;b': expected nginx server names"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path: Path, setup, options,
                                                         message: str) -> None:
    root = setup(tmp_path / "app")
    with pytest.raises(InitError) as err:
        init_app(root, **options)
    assert message in str(err.value) and err.value.exit_code == 2
    assert not (tmp_path / "app" / "hosts.yaml").exists()


@pytest.mark.parametrize(("spec", "entry"), [
    ("web1.example.com", ("web1", "web1.example.com", "deploy", None)),
    ("root@shop-1.example.com:2222", ("shop-1", "shop-1.example.com", "root", 2222)),
    ("deploy@10.0.0.5", ("web1", "10.0.0.5", "deploy", None)),
    ("[2001:db8::1]:22", ("web1", "2001:db8::1", "deploy", 22)),
    ("localhost", ("localhost", "localhost", "deploy", None)),
])
def test_host_option(spec: str, entry: tuple) -> None:
    h = parse_host(spec)
    assert (h.alias, h.host, h.user, h.port) == entry and h.given


def test_host_given_is_written(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "a")
    report, _, data, inv = initialized(root, host="ops@app.example.net:2200")
    assert data["hosts"] == {"app": {"host": "app.example.net", "user": "ops", "port": 2200}}
    assert inv.host("app").port == 2200
    assert report.lines(cwd=tmp_path)[-3:] == [f"next, in {root.resolve()}:",
                                               "  fab setup -H app", "  fab deploy -H app"]


def test_placeholders_say_so(tmp_path: Path) -> None:
    report, text, data, _ = initialized(flask_module(tmp_path / "a"))
    assert data["hosts"] == {"web1": {"host": "web1.example.com", "user": "deploy"}}
    assert "host: web1.example.com        # CHANGE ME" in text
    assert "server_name: localhost          # a placeholder" in text
    assert "hint: hosts.web1.host in hosts.yaml is a placeholder: set your server's name first" \
        in report.lines()


@pytest.mark.parametrize(("raw", "name"), [
    ("My Shop", "My-Shop"), ("shop.example", "shop-example"), ("__", "app"), ("café", "caf"),
])
def test_names_are_made_valid(raw: str, name: str) -> None:
    assert sanitize_name(raw) == name


def test_the_name_from_pyproject_is_made_valid(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "a")
    (root / "pyproject.toml").write_text('[project]\nname = "my.shop"\nversion = "1"\n')
    _, _, _, inv = initialized(root)
    assert inv.host("web1").app.name == "my-shop"


@pytest.mark.parametrize("value", ["app:app", "a: b", "yes", "123", "#x", "x #y", "{a}", "",
                                   "python manage.py migrate --noinput", "it's"])
def test_scalars_read_back_the_same(value: str) -> None:
    import yaml

    assert yaml.safe_load(f"k: {scalar(value)}") == {"k": value}


def test_a_git_work_tree_is_told_to_commit(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "a")
    (root / ".git").mkdir()
    report, text, _, _ = initialized(root)
    assert "as a git work tree, its HEAD is shipped" in text
    assert any("commit these files" in line for line in report.lines())
