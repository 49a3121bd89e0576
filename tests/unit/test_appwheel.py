"""wsgiship.appwheel: the app's own wheel for install: project, built on this machine from the
files a release ships (the build tool replaced by a local stand-in: no index here), refused
when it is not pure Python or cannot be built; and the `install` key of hosts.yaml."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgiship import appwheel, config
from wsgiship.errors import ConfigError, WsgishipError
from wsgiship.source import collect

# the stand-in for `pip wheel`: writes a wheel whose bytes list the files it was given
FAKE_BUILD = """
import pathlib, sys
src, out, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
with open(sys.argv[4], "a") as runs:
    runs.write("built\\n")
if name == "fail":
    print("WARNING: noise")
    for i in range(1, 21):
        print(f"build line {i}", file=sys.stderr)
    sys.exit(1)
out.mkdir()
listing = sorted(str(p.relative_to(src)) + ":" + p.read_text() for p in src.rglob("*.py"))
(out / name).write_text("\\n".join(listing))
"""


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    appwheel._built.clear()
    yield
    appwheel._built.clear()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "src" / "shopapp").mkdir(parents=True)
    (root / "src" / "shopapp" / "__init__.py").write_text("app = 1\n")
    (root / "pyproject.toml").write_text('[project]\nname = "shopapp"\nversion = "1.0"\n')
    return root


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Replace the build tool; set ["wheel"] to the file name it makes ("fail": it fails)."""
    given = {"wheel": "shopapp-1.0-py3-none-any.whl", "runs": str(tmp_path / "runs")}
    monkeypatch.setattr(appwheel, "build_command", lambda src, out: (
        [sys.executable, "-c", FAKE_BUILD, str(src), str(out), given["wheel"], given["runs"]],
        "fake build"))
    return given


def test_the_wheel_is_built_from_the_files_shipped_once_per_revision(app_dir: Path,
                                                                    fake_build) -> None:
    (app_dir / "local_only.pyc").write_text("x")  # never shipped, so never built from
    src = collect(app_dir)
    wheel = appwheel.build(src, app_dir, "web1")
    assert (wheel.filename, wheel.tool, wheel.project) == (
        "shopapp-1.0-py3-none-any.whl", "fake build", "shopapp 1.0")
    assert wheel.data == b"src/shopapp/__init__.py:app = 1\n"
    # the next host of the same run gets the same wheel without a second build
    assert appwheel.build(src, app_dir, "web2") is wheel
    assert Path(fake_build["runs"]).read_text() == "built\n"


def test_a_failed_build_names_the_tool_and_its_last_lines(app_dir: Path, fake_build) -> None:
    fake_build["wheel"] = "fail"
    with pytest.raises(WsgishipError) as err:
        appwheel.build(collect(app_dir), app_dir, "web1")
    text = str(err.value)
    assert text.startswith("web1: install: project: building the app's wheel here (fake build) "
                           "failed; nothing was changed:\n")
    assert text.endswith("build line 20") and "build line 6\n" in text
    assert "build line 5\n" not in text and "WARNING" not in text  # the last 15 lines


def test_a_platform_wheel_is_refused(app_dir: Path, fake_build) -> None:
    fake_build["wheel"] = "shopapp-1.0-cp311-cp311-linux_x86_64.whl"
    with pytest.raises(WsgishipError, match=r"^web1: install: project: the app's wheel shopapp-1\.0-"
                       r"cp311-cp311-linux_x86_64\.whl is built for this machine's platform "
                       r"\(it has compiled code\), not for the server's; nothing was changed"):
        appwheel.build(collect(app_dir), app_dir, "web1")


@pytest.mark.parametrize("name, pure", [
    ("shopapp-1.0-py3-none-any.whl", True),
    ("shop_app-2.0.1-1-py2.py3-none-any.whl", True),     # with a build tag
    ("shopapp-1.0-cp311-abi3-manylinux_2_17_x86_64.whl", False),
    ("shopapp-1.0-py3-none-linux_x86_64.whl", False),
    ("not-a-wheel.zip", False),
])
def test_check_pure(name: str, pure: bool) -> None:
    if pure:
        appwheel.check_pure(name, "web1")
    else:
        with pytest.raises(WsgishipError):
            appwheel.check_pure(name, "web1")


def test_an_app_with_nothing_to_build_from_is_told_what_to_add(app_dir: Path) -> None:
    (app_dir / "pyproject.toml").unlink()
    with pytest.raises(ConfigError) as err:
        appwheel.build(collect(app_dir), app_dir, "web1")
    assert str(err.value) == (f"app.install is project but {app_dir} has no pyproject.toml or "
                              f"setup.py to build the app from: add a pyproject.toml ([project] "
                              f"and [build-system]), or set install: requirements")


def test_the_build_uses_pip_here_else_uv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src, out = tmp_path / "s", tmp_path / "o"
    assert appwheel.build_command(src, out) == (
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "--no-input", "--quiet", "--wheel-dir", str(out), str(src)], "pip wheel")
    monkeypatch.setattr(appwheel.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(appwheel.shutil, "which", lambda name: f"/opt/bin/{name}")
    assert appwheel.build_command(src, out) == (
        ["/opt/bin/uv", "build", "--wheel", "--quiet", "--out-dir", str(out), str(src)], "uv build")
    monkeypatch.setattr(appwheel.shutil, "which", lambda name: None)
    with pytest.raises(WsgishipError, match="with pip or uv, and neither is here"):
        appwheel.build_command(src, out)


# --- the install key ---


def test_install_defaults_to_requirements_and_takes_project(write_hosts) -> None:
    inv = config.load(write_hosts("app:\n  name: shop\n  wsgi: shopapp:app\n"
                                  "hosts:\n  web1: {}\n  web2: {install: project}\n"))
    assert (inv.host("web1").app.install, inv.host("web2").app.install) == (
        "requirements", "project")


@pytest.mark.parametrize("where, text", [
    ("app.install", "app:\n  name: shop\n  wsgi: a:b\n  install: editable\n"),
    ("hosts.web1.install", "app:\n  name: shop\n  wsgi: a:b\nhosts:\n  web1: {install: true}\n"),
])
def test_a_wrong_install_value_says_what_each_one_does(write_hosts, where: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write_hosts(text))
    assert f": {where}: expected requirements (the venv gets the app's requirements; the app " \
           f"runs from its directory) or project (the app itself is installed too, into each " \
           f"release), got " in str(err.value)
