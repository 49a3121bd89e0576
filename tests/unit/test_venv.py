"""wsgiship.commands.venv: the venv key and the installer, and ensure() run with a fake python
whose venv has a fake pip (one dist-info per requirement line), or with the real python and pip
from a local wheelhouse. uv (ensure with a fake uv, install_uv): test_venv_uv.py."""

from __future__ import annotations

import base64
import hashlib
import inspect
import os
import shlex
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes import HOSTILE, NAME, add_release, body_lines, line_with, paths, rel

from wsgiship import source
from wsgiship.commands import venv
from wsgiship.layout import Paths


def test_venv_ensure_quotes_python_and_key() -> None:
    text = venv.ensure(Paths("/srv/app", "app"), NAME, HOSTILE, "py " + HOSTILE)
    assert shlex.split(body_lines(text)[0])[0] == f"V=/srv/app/venvs/{HOSTILE};"
    argv = shlex.split(line_with(text, " -m venv "))
    build = shlex.split(argv[argv.index("-c") + 1])  # the build runs in its own bash -c
    assert build[build.index("-m") - 1] == "py " + HOSTILE
    assert shlex.split(line_with(text, "ln -sfn"))[2] == "../../venvs/" + HOSTILE


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


def test_venv_key_inputs_are_what_goes_into_the_venv() -> None:
    assert list(inspect.signature(venv.venv_key).parameters) == [
        "requirements", "python", "python_version", "installer", "wheelhouse"]


def test_venv_key_defaults_to_pip_from_the_index() -> None:
    assert venv.venv_key("flask\n", "python3", "3.11.2") == venv.venv_key(
        "flask\n", "python3", "3.11.2", "pip", False)


@pytest.mark.parametrize("installer, wheelhouse", [("uv", False), ("pip", True), ("uv", True)])
def test_venv_key_changes_with_installer_or_wheelhouse(installer: str, wheelhouse: bool) -> None:
    # a venv uv built is not reused by pip, nor one from the index for a wheelhouse deploy
    base = venv.venv_key("flask\n", "python3", "3.11.2", "pip", False)
    assert venv.venv_key("flask\n", "python3", "3.11.2", installer, wheelhouse) != base


def test_venv_key_changes_with_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = venv.venv_key("flask\n", "python3", "3.11.2")
    monkeypatch.setattr(venv, "RECIPE", "999")
    assert venv.venv_key("flask\n", "python3", "3.11.2") != before


@pytest.mark.parametrize("wanted, uv_on_server, chosen", [
    ("auto", True, "uv"),
    ("auto", False, "pip"),
    ("uv", True, "uv"),
    ("uv", False, "uv"),      # the deploy refuses it (ops.deploy): not silently pip
    ("pip", True, "pip"),
    ("pip", False, "pip"),
])
def test_installer_for(wanted: str, uv_on_server: bool, chosen: str) -> None:
    assert venv.installer_for(wanted, uv_on_server) == chosen


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
site="$(dirname "$0")/../lib/python3.11/site-packages"; mkdir -p "$site"
while read -r name; do [ -z "$name" ] || mkdir -p "$site/$name-1.0.dist-info"; done < "${@: -1}"
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
    assert res.stdout == "venv=created\npackages=1\n"
    assert (deploy / "venvs" / "k1" / ".complete").is_file()
    assert os.readlink(r1 / ".venv") == "../../venvs/k1"
    assert (r1 / ".venv").resolve() == deploy / "venvs" / "k1"
    log = (r1 / ".wsgiship" / "pip.log").read_text()
    assert log.startswith("pip install ")
    assert f" -r {r1}/.wsgiship/requirements.txt" in log
    r2 = release_with_requirements(deploy, rel(2), "flask\n")
    res = sh(venv.ensure(p, rel(2), "k1", str(fake_python)), env=env)
    assert res.stdout == "venv=reused\npackages=1\n"
    assert os.readlink(r2 / ".venv") == "../../venvs/k1"
    assert calls.read_text().splitlines() == [f"python -m venv {deploy}/venvs/k1"]


def test_an_incomplete_venv_is_rebuilt(deploy: Path, fake_python: Path, tmp_path: Path,
                                       sh) -> None:
    release_with_requirements(deploy, rel(1), "flask\n")
    (deploy / "venvs" / "k1" / "lib").mkdir(parents=True)  # an interrupted build
    (deploy / "venvs" / "k1" / "lib" / "junk").write_text("x")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake_python)),
             env={"CALLS": str(tmp_path / "calls")})
    assert res.stdout == "venv=created\npackages=1\n"
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


@pytest.mark.parametrize("find_links", ["", "/srv/app/wheelhouse/k1"])
def test_pip_installs_from_the_wheelhouse_alone_when_given(deploy: Path, fake_python: Path,
                                                          tmp_path: Path, sh, find_links: str) -> None:
    r = release_with_requirements(deploy, rel(1), "flask\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake_python), "pip", find_links),
             env={"CALLS": str(tmp_path / "calls")})
    assert res.returncode == 0, res.stderr
    index = ["--no-index", "--find-links", find_links] if find_links else []
    assert (r / ".wsgiship" / "pip.log").read_text().split() == [
        "pip", "install", "--disable-pip-version-check", "--no-input", "--use-pep517", *index,
        "-r", f"{r}/.wsgiship/requirements.txt"]


def test_the_wheelhouse_is_one_word() -> None:
    text = venv.ensure(Paths("/srv/app", "app"), NAME, "k1", "python3", "pip", "/w " + HOSTILE)
    argv = shlex.split(line_with(text, " -m venv "))
    build = shlex.split(argv[argv.index("-c") + 1])
    assert build[build.index("--find-links") + 1] == "/w " + HOSTILE


def test_packages_counts_the_venvs_distributions(deploy: Path, fake_python: Path,
                                                tmp_path: Path, sh) -> None:
    env, p = {"CALLS": str(tmp_path / "calls")}, paths(deploy)
    release_with_requirements(deploy, rel(1), "flask\nredis\nclick\n")
    res = sh(venv.ensure(p, rel(1), "k1", str(fake_python)), env=env)
    assert res.stdout == "venv=created\npackages=3\n"
    site = deploy / "venvs" / "k1" / "lib" / "python3.11" / "site-packages"
    (site / "flask").mkdir()             # a package's code, no distribution
    (site / "old.egg-info").mkdir()      # not counted: only *.dist-info
    release_with_requirements(deploy, rel(2), "flask\n")
    (deploy / "venvs" / "k2" / "lib" / "python3.11" / "site-packages" / "x-1.dist-info").mkdir(
        parents=True)                    # another venv's
    res = sh(venv.ensure(p, rel(2), "k1", str(fake_python)), env=env)
    assert res.stdout == "venv=reused\npackages=3\n"


def probe_wheel(where: Path) -> None:
    """A pure-Python wheel, wsgiship-probe 1.0 (module wsgiship_probe, VALUE = 42), made by hand."""
    info = "wsgiship_probe-1.0.dist-info"
    files = {"wsgiship_probe.py": "VALUE = 42\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: wsgiship-probe\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    digest = {name: base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
              for name, text in files.items()}
    record = [f"{name},sha256={digest[name].decode()},{len(text)}" for name, text in files.items()]
    where.mkdir(parents=True)
    with zipfile.ZipFile(where / "wsgiship_probe-1.0-py3-none-any.whl", "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
        whl.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")


def test_real_pip_installs_from_a_wheelhouse_without_the_index(deploy: Path, tmp_path: Path,
                                                              sh) -> None:
    wheels = tmp_path / "wheelhouse" / "k1"
    probe_wheel(wheels)
    r = release_with_requirements(deploy, rel(1), "wsgiship-probe==1.0\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", sys.executable, "pip", str(wheels)))
    assert res.returncode == 0, res.stderr
    v = deploy / "venvs" / "k1"
    got = subprocess.run([str(r / ".venv" / "bin" / "python"), "-c",
                          "import wsgiship_probe; print(wsgiship_probe.VALUE)"],
                         capture_output=True, text=True)
    assert got.stdout == "42\n", got.stderr
    dists = sorted(d.name for d in v.glob("lib/python*/site-packages/*.dist-info"))
    assert "wsgiship_probe-1.0.dist-info" in dists
    # pip's own distributions (pip, setuptools) are not the app's packages
    assert [d for d in dists if not d.startswith(("pip-", "setuptools-", "wheel-"))] == [
        "wsgiship_probe-1.0.dist-info"]
    assert res.stdout == "venv=created\npackages=1\n"


@contextmanager
def in_session(env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A `sleep` leading its own session (its pid is the session id), with `env` added to its
    environment; killed at the end if still there."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True,
                            env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_build_runs_marked_with_its_venv(deploy: Path, fake_python: Path, tmp_path: Path,
                                            sh) -> None:
    # the marker is what a later deploy recognises an abandoned build by
    release_with_requirements(deploy, rel(1), "flask\n")
    marked = tmp_path / "marked"
    python = tmp_path / "bin" / "marking-python"
    python.write_text(f'#!/bin/bash\necho "$WSGISHIP_VENV_BUILD" > {marked}\n'
                      f'exec {fake_python} "$@"\n')
    python.chmod(0o755)
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(python)),
             env={"CALLS": str(tmp_path / "calls")})
    assert res.returncode == 0, res.stderr
    assert marked.read_text() == f"{deploy}/venvs/k1\n"
    assert "WSGISHIP_VENV_BUILD" not in os.environ  # the test itself is no builder


def test_an_abandoned_build_is_killed_before_rebuilding(deploy: Path, fake_python: Path,
                                                       tmp_path: Path, sh) -> None:
    # A deploy whose connection was cut left its pip running in its own session.
    release_with_requirements(deploy, rel(1), "flask\n")
    with in_session({"WSGISHIP_VENV_BUILD": f"{deploy}/venvs/k1"}) as orphan:
        (deploy / "venvs" / "k1.builder").write_text(f"{orphan.pid}\n")
        res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake_python)),
                 env={"CALLS": str(tmp_path / "calls")})
        assert res.returncode == 0, res.stderr
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        assert res.stdout == "venv=created\npackages=1\n"
        assert not (deploy / "venvs" / "k1.builder").exists()


@pytest.mark.parametrize("marker", [
    None,                        # an unrelated session that got the recorded id
    "{deploy}/venvs/k2",         # another venv's builder
    "{deploy}/venvs/k1/sub",     # not the exact venv path
    "{deploy}/venvs/k",
])
def test_an_unrelated_process_in_the_recorded_session_survives(
        deploy: Path, fake_python: Path, tmp_path: Path, sh, marker: str | None) -> None:
    release_with_requirements(deploy, rel(1), "flask\n")
    env = {"WSGISHIP_VENV_BUILD": marker.format(deploy=deploy)} if marker else {}
    with in_session(env) as other:
        (deploy / "venvs" / "k1.builder").write_text(f"{other.pid}\n")
        res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake_python)),
                 env={"CALLS": str(tmp_path / "calls")})
        assert res.returncode == 0, res.stderr
        assert res.stdout == "venv=created\npackages=1\n"
        assert other.poll() is None  # still running
        assert not (deploy / "venvs" / "k1.builder").exists()  # the stale record is gone


# --- a pip that fails without a word: most likely a full disk ---


# a python whose venv's pip fails without writing anything (its log stays empty)
SILENT_PYTHON = r"""#!/bin/bash
[ "$1" = -m ] && [ "$2" = venv ] || exit 9
mkdir -p "$3/bin"
printf '#!/bin/bash\nexit 1\n' > "$3/bin/pip"
chmod +x "$3/bin/pip"
"""


# df -Pm as on a nearly full disk: 3 MB available; each call noted in $CALLS
FAKE_DF = r"""#!/bin/bash
echo "df $*" >> "$CALLS"
echo "Filesystem     1048576-blocks  Used Available Capacity Mounted on"
echo "/dev/vda1               20000 19997         3     100% /srv"
"""


@pytest.fixture
def df_bin(tmp_path: Path) -> Path:
    """A dir holding the fake df, to put first on PATH."""
    bin_ = tmp_path / "df-bin"
    bin_.mkdir()
    (bin_ / "df").write_text(FAKE_DF)
    (bin_ / "df").chmod(0o755)
    return bin_


@pytest.mark.parametrize("python, says_disk", [
    (SILENT_PYTHON, True),    # pip failed and left an empty log
    (FAKE_PYTHON, False),     # pip failed saying why (no-such-package): its log is the answer
])
def test_a_pip_failing_without_a_log_points_at_the_disk(deploy: Path, tmp_path: Path,
                                                       df_bin: Path, sh, python: str,
                                                       says_disk: bool) -> None:
    fake = tmp_path / "bin" / "python-under-test"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(python)
    fake.chmod(0o755)
    r = release_with_requirements(deploy, rel(1), "no-such-package\n")
    calls = tmp_path / "calls"
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake)),
             env={"CALLS": str(calls), "PATH": f"{df_bin}:{os.environ['PATH']}"})
    assert res.returncode == 1
    assert not (deploy / "venvs" / "k1").exists() and not (r / ".venv").is_symlink()
    said = "the installer left no log: No space left on device? 3 MB free"
    if says_disk:
        assert res.stderr == said + "\n"
        assert (r / ".wsgiship" / "pip.log").read_bytes() == b""
        assert f"df -Pm {r}" in calls.read_text().splitlines()
    else:
        assert said not in res.stderr and "No space left" not in res.stderr
        assert "No matching distribution found for no-such-package" in res.stderr
        assert "df " not in (calls.read_text() if calls.exists() else "")


def test_a_pip_failing_without_a_log_reads_the_real_df(deploy: Path, tmp_path: Path,
                                                      sh) -> None:
    fake = tmp_path / "bin" / "silent-python"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(SILENT_PYTHON)
    fake.chmod(0o755)
    release_with_requirements(deploy, rel(1), "flask\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(fake)))
    assert res.returncode == 1
    head, _, tail = res.stderr.strip().partition("? ")
    assert head == "the installer left no log: No space left on device"
    free, _, unit = tail.partition(" ")
    assert free.isdigit() and unit == "MB free", res.stderr
