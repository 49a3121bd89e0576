"""wsgiship.commands.venv with uv: ensure() run with a fake uv at Paths.uv that records its argv
and environment, and install_uv() run with the fakes of `fakebin` (install, stat) and a fake
python3 whose venv's pip "installs" a fake uv."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from fakes import add_release, calls, fake_env, paths, rel

from wsgiship.commands import venv

# uv venv / uv pip install, as far as ensure uses them: each call appended to $UV_CALLS as one
# JSON line {argv, env}; `pip install` makes a dist-info per requirement line and fails (40
# lines of output) on no-such-package.
FAKE_UV = """#!{python}
import json, os, sys
from pathlib import Path
keep = ("UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS", "UV_SYSTEM_CERTS",
        "UV_COMPILE_BYTECODE", "WSGISHIP_VENV_BUILD")
with open(os.environ["UV_CALLS"], "a") as calls:
    calls.write(json.dumps({{"argv": sys.argv[1:],
                            "env": {{k: os.environ.get(k) for k in keep}}}}) + "\\n")
args = sys.argv[1:]
if args[:1] == ["venv"]:
    site = Path(args[-1]) / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if "--seed" in args:
        (site / "pip-25.0.dist-info").mkdir()
    (Path(args[-1]) / "bin").mkdir()
    (Path(args[-1]) / "bin" / "python").write_text("")
elif args[:2] == ["pip", "install"]:
    req = Path(args[args.index("-r") + 1]).read_text().split()
    if "no-such-package" in req:
        for i in range(1, 41):
            print(f"uv line {{i}}", file=sys.stderr)
        sys.exit(1)
    site = Path(args[args.index("--python") + 1]).parents[1] / "lib" / "python3.11" / "site-packages"
    for name in req:
        (site / f"{{name}}-1.0.dist-info").mkdir()
else:
    sys.exit(9)
"""

pytestmark = pytest.mark.usefixtures("tools_here")


@pytest.fixture
def fake_uv(deploy: Path) -> Path:
    """The fake uv where fab setup puts uv (Paths.uv)."""
    uv = Path(paths(deploy).uv)
    uv.parent.mkdir(parents=True)
    uv.write_text(FAKE_UV.format(python=sys.executable))
    uv.chmod(0o755)
    return uv


def with_requirements(root: Path, i: int, text: str) -> Path:
    r = add_release(root, rel(i), venv_key=None)
    (r / ".wsgiship" / "requirements.txt").write_text(text)
    return r


def uv_calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "uv-calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("find_links", ["", "/srv/app/wheelhouse/k1"])
def test_uv_builds_the_venv_with_the_servers_python(deploy: Path, fake_uv: Path, tmp_path: Path,
                                                  sh, find_links: str) -> None:
    p, v = paths(deploy), f"{deploy}/venvs/k1"
    r = with_requirements(deploy, 1, "flask\nredis\n")
    res = sh(venv.ensure(p, rel(1), "k1", "python3", "uv", find_links),
             env={"UV_CALLS": str(tmp_path / "uv-calls")})
    assert res.returncode == 0, res.stderr
    assert res.stdout == "venv=created\npackages=2\n"  # flask, redis: no pip seeded
    made, install = uv_calls(tmp_path)
    python3 = shutil.which("python3")  # the name resolved on the server: uv looks no further
    # no --seed: seeding pip would need the index, which a wheelhouse deploy does without
    assert made["argv"] == ["venv", "--quiet", "--python", python3, v]
    index = ["--no-index", "--find-links", find_links] if find_links else []
    assert install["argv"] == ["pip", "install", "--python", f"{v}/bin/python", *index,
                               "-r", f"{r}/.wsgiship/requirements.txt"]
    for call in (made, install):
        assert call["env"] == {"UV_CACHE_DIR": p.uv_cache, "UV_PYTHON_DOWNLOADS": "never",
                               "UV_NO_PROGRESS": "1", "UV_SYSTEM_CERTS": "1",
                               "UV_COMPILE_BYTECODE": "1", "WSGISHIP_VENV_BUILD": v}
    assert p.uv_cache == f"{deploy}/.cache/uv"  # beside the venvs: same filesystem
    assert (Path(v) / ".complete").is_file()
    assert os.readlink(r / ".venv") == "../../venvs/k1"


def test_a_uv_venv_is_reused_without_running_uv(deploy: Path, fake_uv: Path, tmp_path: Path,
                                                sh) -> None:
    env = {"UV_CALLS": str(tmp_path / "uv-calls")}
    with_requirements(deploy, 1, "flask\n")
    assert sh(venv.ensure(paths(deploy), rel(1), "k1", "python3", "uv"), env=env).returncode == 0
    r2 = with_requirements(deploy, 2, "flask\n")
    res = sh(venv.ensure(paths(deploy), rel(2), "k1", "python3", "uv"), env=env)
    assert res.stdout == "venv=reused\npackages=1\n"
    assert len(uv_calls(tmp_path)) == 2  # the first build's venv and pip install only
    assert os.readlink(r2 / ".venv") == "../../venvs/k1"


def test_pip_builds_do_not_run_uv(deploy: Path, fake_uv: Path, tmp_path: Path, sh) -> None:
    python = tmp_path / "bin" / "python-for-venv"
    python.parent.mkdir()
    python.write_text('#!/bin/bash\nmkdir -p "$3/bin"\nprintf "#!/bin/bash\\n" > "$3/bin/pip"\n'
                      'chmod +x "$3/bin/pip"\n')
    python.chmod(0o755)
    with_requirements(deploy, 1, "flask\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", str(python), "pip"),
             env={"UV_CALLS": str(tmp_path / "uv-calls")})
    assert res.returncode == 0, res.stderr
    assert uv_calls(tmp_path) == []


def test_a_failed_uv_install_shows_the_logs_tail_and_leaves_no_venv(deploy: Path, fake_uv: Path,
                                                                   tmp_path: Path, sh) -> None:
    r = with_requirements(deploy, 1, "flask\nno-such-package\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", "python3", "uv"),
             env={"UV_CALLS": str(tmp_path / "uv-calls")})
    assert res.returncode == 1
    assert res.stderr.splitlines() == [f"uv line {i}" for i in range(11, 41)]  # the last 30
    assert res.stdout == ""
    assert not (deploy / "venvs" / "k1").exists()
    assert not (deploy / "venvs" / "k1.builder").exists()
    assert not (r / ".venv").is_symlink()
    assert (r / ".wsgiship" / "pip.log").read_text().count("uv line") == 40


def test_no_uv_on_the_server_fails_the_uv_build(deploy: Path, tmp_path: Path, sh) -> None:
    r = with_requirements(deploy, 1, "flask\n")
    res = sh(venv.ensure(paths(deploy), rel(1), "k1", "python3", "uv"))
    assert res.returncode == 1
    assert f"{deploy}/.tools/uv/bin/uv" in res.stderr
    assert not (deploy / "venvs" / "k1").exists() and not (r / ".venv").is_symlink()


# --- install_uv (fab setup, as root) ---


# python3 -m venv DIR: a venv whose pip "installs" uv X (the version its argv's uv==X names): a
# uv that answers --version with `uv X`
FAKE_PYTHON3 = r"""#!/bin/bash
echo "python3 $*" >> "$CALLS"
[ "$1" = -m ] && [ "$2" = venv ] || exit 9
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<'PIP'
#!/bin/bash
echo "pip $*" >> "$CALLS"
v="${@: -1}"; v="${v#uv==}"
printf '#!/bin/bash\necho "uv %s"\n' "$v" > "$(dirname "$0")/uv"
chmod +x "$(dirname "$0")/uv"
PIP
chmod +x "$3/bin/pip"
"""


@pytest.fixture
def setup_bin(fakebin: Path) -> Path:
    """fakebin, its python3 the fake above."""
    (fakebin / "python3").unlink()
    (fakebin / "python3").write_text(FAKE_PYTHON3)
    (fakebin / "python3").chmod(0o755)
    return fakebin


def planted_uv(where: Path, version: str, ran: Path) -> None:
    """A uv at where/uv/bin/uv answering `uv VERSION`, leaving `ran` when run."""
    (where / "uv" / "bin").mkdir(parents=True)
    (where / "uv" / "bin" / "uv").write_text(f'#!/bin/bash\ntouch {ran}\necho "uv {version}"\n')
    (where / "uv" / "bin" / "uv").chmod(0o755)


def test_install_uv_installs_it_once(deploy: Path, setup_bin: Path, sh) -> None:
    p, env = paths(deploy), fake_env(setup_bin)
    res = sh(venv.install_uv(p), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"changed=uv {venv.UV_VERSION}\n"
    made, python, pip = calls(setup_bin)
    assert made == f"install -d -o root -g root -m 755 {deploy}/.tools"
    assert python == f"python3 -m venv {deploy}/.tools/uv"
    # a wheel of the pinned version, never an sdist built as root
    assert pip.startswith("pip install ") and pip.endswith(f" uv=={venv.UV_VERSION}")
    assert "--only-binary=:all:" in pip.split()
    assert os.access(p.uv, os.X_OK)
    res = sh(venv.install_uv(p), env=env)  # at the version: nothing to do
    assert (res.returncode, res.stdout) == (0, "")
    assert len(calls(setup_bin)) == 3


def test_install_uv_replaces_another_version(deploy: Path, setup_bin: Path, tmp_path: Path,
                                             sh) -> None:
    planted_uv(deploy / ".tools", "0.1.0", tmp_path / "ran")
    (deploy / ".tools" / "uv" / "stale").write_text("x")
    res = sh(venv.install_uv(paths(deploy)), env=fake_env(setup_bin))
    assert res.stdout == f"changed=uv {venv.UV_VERSION}\n"
    assert not (deploy / ".tools" / "uv" / "stale").exists()  # a fresh venv
    assert (tmp_path / "ran").exists()  # root's own uv, asked its version


def test_install_uv_keeps_roots_uv_at_the_version(deploy: Path, setup_bin: Path, tmp_path: Path,
                                                  sh) -> None:
    planted_uv(deploy / ".tools", venv.UV_VERSION, tmp_path / "ran")
    res = sh(venv.install_uv(paths(deploy)), env=fake_env(setup_bin))
    assert (res.returncode, res.stdout) == (0, "")
    assert calls(setup_bin) == []


def test_install_uv_removes_a_link_never_following_it(deploy: Path, setup_bin: Path,
                                                     tmp_path: Path, sh) -> None:
    elsewhere = tmp_path / "elsewhere"
    planted_uv(elsewhere, venv.UV_VERSION, tmp_path / "ran")
    (elsewhere / "keep").write_text("mine\n")
    (deploy / ".tools").symlink_to(elsewhere)
    res = sh(venv.install_uv(paths(deploy)), env=fake_env(setup_bin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"changed=uv {venv.UV_VERSION}\n"
    assert not (deploy / ".tools").is_symlink() and (deploy / ".tools" / "uv" / "bin" / "uv").is_file()
    assert (elsewhere / "keep").read_text() == "mine\n"  # the link's target untouched
    assert sorted(x.name for x in elsewhere.iterdir()) == ["keep", "uv"]
    assert not (tmp_path / "ran").exists()  # root never ran the uv behind the link


def test_install_uv_replaces_a_dir_root_does_not_own(deploy: Path, setup_bin: Path,
                                                    tmp_path: Path, sh) -> None:
    planted_uv(deploy / ".tools", venv.UV_VERSION, tmp_path / "ran")
    owners = tmp_path / "owners"
    owners.write_text(f"deploy {deploy}/.tools\n")  # the fake stat's owner of .tools
    res = sh(venv.install_uv(paths(deploy)), env=fake_env(setup_bin, OWNERS=str(owners)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"changed=uv {venv.UV_VERSION}\n"
    assert not (tmp_path / "ran").exists()  # the deploy user's uv never ran as root
    assert owners.read_text().splitlines()[-1] == f"root {deploy}/.tools"
