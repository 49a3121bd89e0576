"""Everything `wsgiship init` guesses about an app's directory, with the reason of each guess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InitError
from ..source import requirement_names
from .apps import detect as detect_flask_or_wsgi
from .djangoapp import detect as detect_django
from .plan import HostEntry, Plan, check_name, check_server_name, parse_host, sanitize_name
from .scan import has_python, pyproject, read_text

# the order the guesses are printed in
KEYS = ("wsgi", "name", "server_name", "requirements", "python", "static", "shared_dirs",
        "health.path", "install", "hooks", "host")


def app_dir(path: str | Path) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise InitError(f"{root}: no such directory; give your app's directory (wsgiship init "
                        f"PATH) or run wsgiship init inside it")
    if not root.is_dir():
        raise InitError(f"{root}: not a directory; give your app's directory (wsgiship init PATH)")
    return root.resolve()


def plan_for(path: str | Path, *, host: str = "", name: str = "", server_name: str = "") -> Plan:
    """Read the app at `path` (never running any of it) and decide what hosts.yaml says."""
    root = app_dir(path)
    plan = Plan(root=root)
    plan.host = parse_host(host) if host else HostEntry()
    if server_name:
        plan.server_name, plan.server_name_given = check_server_name(server_name), True
    given_name = check_name(name) if name else ""
    if not has_python(root):
        raise InitError(f"{root}: nothing WSGI-like here (no .py module, manage.py, "
                        f"requirements.txt or pyproject.toml); run wsgiship init in your app's "
                        f"directory")
    project = pyproject(root).get("project", {})
    project = project if isinstance(project, dict) else {}
    if not detect_django(plan) and not detect_flask_or_wsgi(plan):
        plan.guess("wsgi", plan.wsgi, "no WSGI callable found: set app.wsgi to module:callable")
    if plan.framework in ("WSGI", ""):
        plan.guess("health.path", "/", "the default: / must answer 200")
        plan.note("health", "a 404 on / fails the health check: set health.path to a URL that "
                            "answers 200")
    _name(plan, given_name, project)
    _server_name(plan)
    _requirements(plan, project)
    _python(plan, project)
    _host(plan)
    plan.git = (root / ".git").exists()
    plan.guesses.sort(key=lambda g: KEYS.index(g.key) if g.key in KEYS else len(KEYS))
    return plan


def _name(plan: Plan, given: str, project: dict[str, Any]) -> None:
    if given:
        plan.name = given
        plan.guess("name", given, "--name")
        return
    raw = project.get("name")
    if isinstance(raw, str) and raw.strip():
        plan.name = sanitize_name(raw)
        plan.guess("name", plan.name, "from pyproject.toml [project].name")
    else:
        plan.name = sanitize_name(plan.root.name)
        plan.guess("name", plan.name, "from the directory's name")


def _server_name(plan: Plan) -> None:
    if plan.server_name_given:
        plan.guess("server_name", plan.server_name, "--server-name")
    else:
        plan.guess("server_name", plan.server_name,
                   "a placeholder: set the domain names the site answers to")


def _requirements(plan: Plan, project: dict[str, Any]) -> None:
    root = plan.root
    deps = project.get("dependencies")
    if (root / "requirements.txt").is_file():
        names = [n for n in requirement_names(read_text(root / "requirements.txt"))
                 if n and not n.startswith("-")]
        plan.requirements = "requirements.txt"
        plan.guess("requirements", "requirements.txt",
                   f"{_count(names, 'requirement')}, installed into the server's venv")
    elif (root / "pyproject.toml").is_file() and isinstance(deps, list) and deps:
        names = requirement_names("\n".join(str(d) for d in deps))
        plan.requirements = "pyproject.toml"
        plan.guess("requirements", "pyproject.toml [project].dependencies",
                   f"no requirements.txt; {_count(names, 'dependency', 'dependencies')}, "
                   f"installed into the server's venv")
    else:
        names = []
        plan.guess("requirements", "none", "no requirements.txt, no [project].dependencies")
        naming = f" naming {plan.framework}" if plan.framework in ("Django", "Flask") else ""
        plan.hints.append(f"no requirements.txt and no [project].dependencies in pyproject.toml: "
                          f"the server's venv gets uWSGI only; write a requirements.txt{naming} "
                          f"(e.g. pip freeze > requirements.txt)")
    framework = plan.framework.lower()
    if names and framework in ("django", "flask") and framework not in names:
        plan.hints.append(f"{plan.requirements} does not name {plan.framework}: add it, the "
                          f"server's venv has only what it names")
    if plan.src_layout:
        plan.guess("install", "not the app itself", "src/ layout: hosts.yaml puts src/ on the "
                                                     "import path (uwsgi pythonpath, env PYTHONPATH)")


def _count(items: list[str], one: str, many: str = "") -> str:
    return f"{len(items)} {one if len(items) == 1 else many or one + 's'}"


def _python(plan: Plan, project: dict[str, Any]) -> None:
    requires = project.get("requires-python")
    if isinstance(requires, str) and requires.strip():
        plan.guess("python", requires.strip(), "pyproject.toml requires-python; a comment only: "
                                               "the server's python3 makes the venv")
        return
    version = read_text(plan.root / ".python-version").strip().splitlines()
    if version and version[0].strip():
        plan.guess("python", version[0].strip(), ".python-version; a comment only: the "
                                                 "server's python3 makes the venv")


def _host(plan: Plan) -> None:
    h = plan.host
    where = f"{h.user}@{h.host}" + (f":{h.port}" if h.port else "")
    if h.given:
        plan.guess("host", f"{h.alias} = {where}", "--host")
    else:
        plan.guess("host", f"{h.alias} = {where}", "a placeholder: set your server in hosts.yaml "
                                                   "or give --host")
