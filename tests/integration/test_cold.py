"""Cold deploys on the real test host: uWSGI from its wheel and uv, with no compiler on the
server; a pinned uWSGI sdist still built where a compiler is; a wheelhouse deploy with the
server's package index unreachable; a requirement with no wheel refused before anything moves."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import Project, make_project

# the compilers a build would call (build-essential's); moved aside, then put back
COMPILERS = "/usr/bin/gcc-12 /usr/bin/x86_64-linux-gnu-gcc-12 /usr/bin/cc /usr/bin/gcc"


@pytest.fixture
def no_compiler(host) -> Iterator[None]:
    # -L too: some are links to others (a hidden target leaves them dangling, not gone)
    host.run(f"for f in {COMPILERS}; do if [ -e $f ] || [ -L $f ]; then mv $f $f.hidden; fi; done")
    try:
        assert host.run("command -v gcc || command -v cc", check=False).returncode != 0
        yield
    finally:
        host.run(f"for f in {COMPILERS}; do if [ -e $f.hidden ] || [ -L $f.hidden ]; then"
                 f" mv $f.hidden $f; fi; done")


@pytest.fixture
def no_index(host) -> Iterator[None]:
    """pip and uv on the server pointed at an index that refuses every connection."""
    host.run("cp /etc/pip.conf /etc/pip.conf.cold && printf 'index-url = http://127.0.0.1:9/simple\\n'"
             " >> /etc/pip.conf && mkdir -p /etc/uv"
             " && echo 'index-url = \"http://127.0.0.1:9/simple\"' > /etc/uv/uv.toml")
    try:
        yield
    finally:
        host.run("mv /etc/pip.conf.cold /etc/pip.conf; rm -rf /etc/uv")


def venv_site(p: Project) -> str:
    return p.remote(f"ls {p.deploy_to}/current/.venv/lib/python3*/site-packages")


@pytest.fixture
def uv_for_this_test(host) -> Iterator[None]:
    """uv from fab setup serves every app of the server: the other tests of this shared host
    keep deploying with pip."""
    try:
        yield
    finally:
        host.run("rm -rf /opt/wsgiship")


def test_a_first_deploy_with_uv_and_the_uwsgi_wheel_needs_no_compiler(
        host, tmp_path, no_compiler, uv_for_this_test) -> None:
    p = make_project(host, tmp_path, uwsgi_package="pyuwsgi")
    setup = p.must(p.fab("setup", "-H", "t"))
    assert re.search(r"uv\s+[\d.]+s\s+(changed: uv|ok)", setup), setup
    assert "build-essential" not in setup
    # root's uv: neither the deploy user nor the app may change what every deploy runs
    assert host.run("stat -c '%U %a' /opt/wsgiship /opt/wsgiship/uv/bin/uv").stdout.split() == [
        "root", "755", "root", "755"]
    for user in ("deploy", f"wsgiship-{p.name}"):
        for attempt in ("echo x >> /opt/wsgiship/uv/bin/uv", "mv /opt/wsgiship/uv /tmp/uv-moved",
                        "touch /opt/wsgiship/planted"):
            tried = host.run(f"runuser -u {user} -- sh -c '{attempt}'", check=False)
            assert tried.returncode != 0, (user, attempt)
    out = p.must(p.deploy())
    assert re.search(r"venv\s+[\d.]+s\s+created venvs/\w+ with uv: \d+ packages from "
                     r"requirements.txt", out), out
    assert p.get("/")[:2] == (200, "Hello World!")
    assert "pyuwsgi" in venv_site(p)
    # a requirements change builds a new venv the same way; pyuwsgi starts beside the live one
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.16.0\n")
    p.set_text("six")
    out = p.must(p.deploy())
    assert "with uv" in out and "stopping gracefully" in out, out
    assert p.get("/")[:2] == (200, "six")
    p.set_text("code only")
    out = p.must(p.deploy())
    assert "reused venvs/" in out and "slot" in out, out


def test_a_pinned_uwsgi_sdist_is_still_compiled(project) -> None:
    p = project(uwsgi_package="pyuwsgi")  # the app's own pin wins
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nuwsgi==2.0.31\n")
    p.must(p.deploy())
    site = venv_site(p)
    assert "uwsgi-2.0.31" in site.lower() and "pyuwsgi" not in site
    assert p.get("/")[:2] == (200, "Hello World!")


def test_a_wheelhouse_deploy_needs_no_index_on_the_server(host, tmp_path, no_index) -> None:
    p = make_project(host, tmp_path, wheelhouse=True, uwsgi_package="pyuwsgi")
    # the block holds: the server's pip cannot fetch anything
    assert host.run("python3 -m pip download --no-deps -d /tmp/x six --retries 0 --timeout 3",
                    check=False).returncode != 0
    out = p.must(p.deploy())
    assert re.search(r"wheelhouse\s+[\d.]+s\s+\d+ wheels for cp3\d+ manylinux_2_\d+_\w+, \d+ KiB "
                     r"uploaded", out), out
    assert "pyuwsgi" in venv_site(p)
    assert p.get("/")[:2] == (200, "Hello World!")
    # the same requirements: nothing built or uploaded again
    p.set_text("again")
    out = p.must(p.deploy())
    assert re.search(r"wheelhouse\s+[\d.]+s\s+on the server", out), out
    assert p.get("/")[:2] == (200, "again")


def test_a_requirement_without_a_wheel_is_refused_before_anything_changes(project) -> None:
    p = project(wheelhouse=True, uwsgi_package="pyuwsgi")
    p.must(p.deploy())
    before, releases = p.current(), p.releases()
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nuwsgi==2.0.31\n")
    res = p.deploy()
    assert res.returncode != 0
    assert "uwsgi==2.0.31 is a source package" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert p.releases() == releases and p.current() == before and not p.lock_exists()
    # any other package without a wheel names itself and the fix
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nwsgiship-no-such-package==1.0\n")
    res = p.deploy()
    assert "no wheel of wsgiship-no-such-package==1.0 for t's platform" in res.stderr, res.stderr
    assert p.releases() == releases
