"""wsgiship.ops.deploy: the venv step's line (venv_line), the installer the updating stage
picks from app.installer and the server's uv=1 fact, and what `failed` says and logs after a
publish job that failed, run with a Remote whose run and put are stubbed (nothing connects)."""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import NAME, line_with

from wsgiship import output
from wsgiship.commands import venv
from wsgiship.config import App, Host
from wsgiship.errors import RemoteError, WsgishipError
from wsgiship.layout import paths_for
from wsgiship.ops.deploy import Deploy, venv_line
from wsgiship.ops.publish import Outcome
from wsgiship.ops.session import Session
from wsgiship.remote import Remote, Result
from wsgiship.source import collect


@pytest.mark.parametrize("facts, installer, rule, line", [
    ({"venv": "created", "packages": "12"}, "uv", "requirements.txt + pyuwsgi",
     "created venvs/k1 with uv: 12 packages from requirements.txt + pyuwsgi"),
    ({"venv": "created", "packages": "3"}, "pip", "pyproject.toml [project].dependencies + uwsgi",
     "created venvs/k1 with pip: 3 packages from pyproject.toml [project].dependencies + uwsgi"),
    ({"venv": "reused", "packages": "8"}, "uv", "pyproject.toml [project].dependencies + pyuwsgi",
     "reused venvs/k1 (uv: 8 packages from pyproject.toml [project].dependencies + pyuwsgi)"),
    ({"venv": "reused", "packages": "12"}, "pip", "requirements.txt",  # names its own uWSGI
     "reused venvs/k1 (pip: 12 packages from requirements.txt)"),
    ({"venv": "created", "packages": "1"}, "pip",
     "no requirements.txt or [project].dependencies: only uWSGI (pyuwsgi)",
     "created venvs/k1 with pip: 1 package; no requirements.txt or [project].dependencies: "
     "only uWSGI (pyuwsgi)"),
    ({}, "uv", "requirements.txt + pyuwsgi",       # a script that said nothing
     "? venvs/k1 with uv: ? packages from requirements.txt + pyuwsgi"),
])
def test_venv_line(facts: dict[str, str], installer: str, rule: str, line: str) -> None:
    assert venv_line(facts, "k1", installer, rule) == line


class Updating:
    """A Deploy in its updating stage, on a stubbed Remote: `runs` holds (what, script) of each
    run, `puts` the remote paths uploaded; the venv script answers `venv_answer`."""

    def __init__(self, app: App, facts: dict[str, str], venv_answer: str) -> None:
        self.remote = Remote(Host("web1", "192.0.2.1", app, user="deploy"))
        self.out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
        self.runs: list[tuple[str, str]] = []
        self.puts: list[str] = []
        self.venv_answer = venv_answer
        self.remote.run = self.run  # type: ignore[method-assign]
        self.remote.put = lambda data, path, what="upload": self.puts.append(path)  # type: ignore[method-assign]
        self.deploy = Deploy(self.remote, app, self.out)
        self.deploy.source = collect(app.source, app.uwsgi_package)
        self.deploy.release = NAME
        self.deploy.s = Session(remote=self.remote, app=app, out=self.out, action="deploy",
                                token="t", facts=facts)

    def run(self, body: str, **kwargs: object) -> Result:
        what = str(kwargs.get("what", ""))
        self.runs.append((what, body))
        return Result(0, self.venv_answer if "install (venv " in what else "", "")

    def lines(self) -> list[str]:
        return self.out.printer.out.getvalue().decode().splitlines()  # type: ignore[attr-defined]


@pytest.fixture
def updating(make_app: Callable[..., App], tmp_path: Path) -> Callable[..., Updating]:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "hello.py").write_text("app = None\n")
    (app_dir / "requirements.txt").write_text("flask\n")

    def make(facts: dict[str, str], answer: str = "venv=created\npackages=7\n",
             **settings: object) -> Updating:
        return Updating(make_app(source="app", **settings), facts, answer)
    return make


@pytest.mark.parametrize("installer, uv_fact, chosen", [
    ("auto", "1", "uv"),
    ("auto", None, "pip"),
    ("uv", "1", "uv"),
    ("pip", "1", "pip"),
    ("pip", None, "pip"),
])
def test_updating_builds_the_venv_with_the_chosen_installer(updating, installer: str,
                                                           uv_fact: str | None, chosen: str) -> None:
    facts = {"python": "3.11.2", **({"uv": uv_fact} if uv_fact else {})}
    u = updating(facts, installer=installer)
    u.deploy.updating()
    src, p = u.deploy.source, paths_for(u.deploy.app)
    assert src.requirements == "flask\npyuwsgi==2.0.30.post1\n"  # the default: the pyuwsgi wheel
    key = venv.venv_key(src.requirements, "python3", "3.11.2", chosen, False)
    what, body = u.runs[-1]
    assert what == f"{chosen} install (venv {key})"
    assert body == venv.ensure(p, NAME, key, "python3", chosen, "")
    step = next(line for line in u.lines() if line.startswith("[web1] venv "))
    assert step.endswith(f"  created venvs/{key} with {chosen}: 7 packages from requirements.txt"
                         " + pyuwsgi")


def test_a_reused_venv_says_so(updating) -> None:
    u = updating({"python": "3.11.2", "uv": "1"}, "venv=reused\npackages=9\n")
    u.deploy.updating()
    step = next(line for line in u.lines() if line.startswith("[web1] venv "))
    assert step.endswith(" (uv: 9 packages from requirements.txt + pyuwsgi)")
    assert " reused venvs/" in step


def test_the_uwsgi_sdist_changes_the_venv(updating) -> None:
    u = updating({"python": "3.11.2"}, uwsgi_package="uwsgi")
    u.deploy.updating()
    assert u.deploy.source.requirements == "flask\nuwsgi==2.0.31\n"
    key = venv.venv_key("flask\nuwsgi==2.0.31\n", "python3", "3.11.2", "pip", False)
    assert key != venv.venv_key("flask\npyuwsgi==2.0.30.post1\n", "python3", "3.11.2", "pip", False)
    assert u.runs[-1][0] == f"pip install (venv {key})"


@pytest.mark.parametrize("previous, points", [
    ("", ["first_deploy", "before_switch"]),          # no current release: a first deploy
    ("20240101T000000Z-0000000", ["before_switch"]),  # one serves: first_deploy is done
])
def test_first_deploy_hooks_run_before_before_switch_only_on_a_first_deploy(
        updating, previous: str, points: list[str]) -> None:
    u = updating({}, hooks={"first_deploy": ["flask --app hello init-db"],
                            "before_switch": ["flask --app hello db upgrade"],
                            "after_switch": ["true"]})
    u.deploy.previous = previous
    u.deploy.hooks("before", "publishing")
    assert [what for what, _ in u.runs] == [f"hook {point} #1" for point in points]
    assert all(f"WSGISHIP_STAGE={point}" in body for (_, body), point in zip(u.runs, points, strict=True))
    steps = [line.split()[1:3] for line in u.lines() if line.startswith("[web1] hook ")]
    assert steps == [["hook", point] for point in points]


def test_installer_uv_without_uv_on_the_server_is_refused_before_anything(updating) -> None:
    u = updating({"python": "3.11.2"}, installer="uv")
    with pytest.raises(WsgishipError) as err:
        u.deploy.updating()
    assert str(err.value) == ("web1: app.installer is uv but uv is not on web1: run fab setup "
                              "-H web1 (it installs uv), or set installer: auto")
    assert (u.runs, u.puts) == ([], [])
    assert u.deploy.created is False  # nothing to clean up: no release was unpacked


# --- failed: after a publish job that failed ---

R0 = "20241231T000000Z-0000000"
CHECK = RemoteError("check the new uWSGI failed (exit 1)", "status=500", host="web1")


@pytest.mark.parametrize("previous, result, switched, said", [
    ("", "failed", False, "release {release} never served a request: it failed before the "
                          "switch; it is kept for inspection ({path})"),
    ("", "failed", True, "first deploy failed after the switch: the site is DOWN; release "
                         "{release} is kept for inspection ({path})"),
    (R0, "back", False, None),   # the job went back (or never left R0): it said so itself
    (R0, "back", True, None),
])
def test_a_failed_publish_says_whether_the_release_served_and_logs_it(
        updating, previous: str, result: str, switched: bool, said: str | None) -> None:
    u = updating({"python": "3.11.2"})
    d = u.deploy
    d.created, d.previous = True, previous
    d.published = Outcome(result, CHECK.reason, CHECK, switched=switched)
    d.failed(CHECK)
    path = d.s.paths.release(NAME)
    assert u.lines() == ([] if said is None else
                         [f"[web1] {said.format(release=NAME, path=path)}"])
    # the job marked the release failed: only the log entry is written here
    [(what, body)] = u.runs
    entry = json.loads(shlex.split(line_with(body, "printf"))[2])
    assert what == "deploy log" and (entry["release"], entry["result"], entry["reason"]) == (
        NAME, "failed", CHECK.reason)
    assert entry["rolled_back_to"] == (previous or None)


# --- validating and publishing ---


def test_validating_checks_the_configs_only(updating) -> None:
    # the app itself is checked by starting it in its slot (the publish job's start and check)
    u = updating({"python": "3.11.2"})
    u.deploy.validating()
    assert [what for what, _ in u.runs] == ["nginx -t of the new site and service config check"]
    assert [line.split("  ")[0] for line in u.lines()] == ["[web1] check configs"]
    assert "runpy" not in u.runs[0][1] and ".venv/bin/python" not in u.runs[0][1]


@pytest.mark.parametrize("watch", [0, 90])
def test_a_deploy_publishes_with_its_watch_window(updating, monkeypatch, watch: int) -> None:
    from wsgiship.ops import deploy as deploy_mod

    u = updating({"python": "3.11.2"}, health={"watch": watch})
    u.deploy.previous = R0
    given: list[object] = []
    monkeypatch.setattr(deploy_mod, "run_job",
                        lambda s, job, release, *a, **k: given.append(job) or Outcome("ok"))
    u.deploy.publishing()
    [job] = given
    steps = [x.name for x in job.forward]  # type: ignore[attr-defined]
    assert ("watch" in steps) == bool(watch)
    assert steps[-1] == "retire" and [x.name for x in job.back] == [  # type: ignore[attr-defined]
        "start", "check", "switch", "install", "nginx", "health", "retire"]


def test_going_back_after_a_hook_failed_kills_the_release_it_leaves(updating,
                                                                   monkeypatch) -> None:
    from wsgiship.commands import services
    from wsgiship.ops import deploy as deploy_mod

    u = updating({"python": "3.11.2"})
    d = u.deploy
    d.created, d.previous, d.published = True, R0, Outcome("ok", switched=True)
    given: list[tuple[object, str]] = []
    monkeypatch.setattr(deploy_mod, "run_job",
                        lambda s, job, release, *a, **k: given.append((job, release))
                        or Outcome("ok"))
    d.failed(RemoteError("after_switch hook failed (exit 1)", host="web1"))
    [(job, release)] = given
    assert release == R0 and job.back == []  # type: ignore[attr-defined]
    retire = job.forward[-1]  # type: ignore[attr-defined]
    assert retire.body.endswith(services.retire(d.s.paths, kill=True))
    assert u.lines()[0] == f"[web1] rolling back to {R0}"


# --- install: project ---


def test_install_project_ships_the_wheel_and_installs_it_after_the_venv(updating,
                                                                       monkeypatch) -> None:
    from wsgiship import appwheel
    from wsgiship.commands import project

    wheel = appwheel.Wheel("hello-1.0-py3-none-any.whl", b"PK-wheel", "pip wheel")
    monkeypatch.setattr(appwheel, "build", lambda source, where, host: wheel)
    tarballs: list[dict[str, str | bytes]] = []
    from wsgiship.ops import deploy as deploy_mod
    real_tarball = deploy_mod.tarball
    monkeypatch.setattr(deploy_mod, "tarball",
                        lambda src, extra: tarballs.append(dict(extra)) or real_tarball(src, extra))
    u = updating({"python": "3.11.2", "uv": "1"}, install="project")
    u.deploy.updating()
    assert tarballs[0][".wsgiship/dist/hello-1.0-py3-none-any.whl"] == b"PK-wheel"
    # after the venv (which knows nothing of the app), with the venv's installer
    whats = [what for what, _ in u.runs]
    assert whats[-2].startswith("uv install (venv ")
    assert whats[-1] == "uv install of hello-1.0-py3-none-any.whl"
    assert u.runs[-1][1] == project.install(u.deploy.s.paths, NAME, wheel.filename, "uv")
    steps = {line.split()[1]: line for line in u.lines()}
    assert steps["build"].endswith("  hello-1.0-py3-none-any.whl (1 KiB, pip wheel here)")
    assert steps["install"].endswith("  hello 1.0 into the release's .wsgiship/site (uv --no-deps:"
                                     " the venv stays shared), 0 scripts")


def test_install_requirements_builds_no_wheel(updating, monkeypatch) -> None:
    from wsgiship import appwheel

    monkeypatch.setattr(appwheel, "build", lambda *a: pytest.fail("built a wheel"))
    u = updating({"python": "3.11.2"})
    u.deploy.updating()
    assert not any(" install of " in what for what, _ in u.runs)
    assert not any(line.split()[1] in ("build", "install") for line in u.lines())
