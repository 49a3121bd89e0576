"""Flask apps and plain WSGI callables: found in the app's modules by reading their code.

Flask: a module-level `app = Flask(...)` (-> pkg:app), else a `create_app` factory
(-> pkg:create_app()); its static folder, its instance folder. Any other app: a module-level
`application` or `app`.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass

from .plan import Plan
from .scan import (
    Module,
    call_name,
    constant,
    imports_module,
    keyword,
    modules,
    relative,
    top_assignments,
    top_function,
    top_names,
)

FACTORIES = ("create_app", "make_app")
# module-level objects that are not WSGI apps (uWSGI here serves WSGI only)
ASGI = {"FastAPI", "Starlette", "Quart", "Sanic", "Litestar"}
ROOT_ROUTE_RE = re.compile(r"""\.(?:route|get)\(\s*['"]/['"]""")
INIT_DB_RE = re.compile(r"""['"](init-db|init_db|initdb)['"]""")


@dataclass(frozen=True)
class Found:
    module: Module
    attr: str
    factory: bool = False
    flask: ast.Call | None = None    # the Flask(...) call, for its static and instance folders

    @property
    def wsgi(self) -> str:
        return f"{self.module.name}:{self.attr}" + ("()" if self.factory else "")


def detect(plan: Plan) -> bool:
    """Fill the plan for a Flask app or another WSGI callable; False when none is found."""
    mods = [m for m in modules(plan.root) if m.tree is not None]
    flask = _flask(mods)
    if flask is not None:
        _use(plan, flask, "Flask")
        if flask.factory:
            _factory_arguments(plan, flask)
        _flask_extras(plan, flask, mods)
        return True
    found, asgi = _generic(mods)
    if found is not None:
        _use(plan, found, "WSGI")
        return True
    if asgi:
        plan.hints.append(f"{asgi}: an ASGI app; uWSGI here serves WSGI apps only")
    return False


def _use(plan: Plan, found: Found, framework: str) -> None:
    plan.framework = framework
    shown = relative(found.module.path, plan.root) or found.module.path.name
    what = {(True, False): "app = Flask(...)", (True, True): f"a {found.attr}() factory",
            (False, False): f"a module-level {found.attr}"}[(framework == "Flask", found.factory)]
    plan.use_wsgi(found.wsgi, f"{framework}: {what} in {shown}" if framework == "Flask"
                  else f"{what} in {shown}")
    if found.module.base != plan.root:
        plan.src_layout = True
    if found.module.top in sys.stdlib_module_names:
        plan.hints.append(f"{shown} shares its name with Python's own {found.module.top} module "
                          f"(the server may import that one instead): rename it")


def _flask(mods: list[Module]) -> Found | None:
    flask_mods = [m for m in mods if m.tree and imports_module(m.tree, "flask")]
    for mod in flask_mods:
        assert mod.tree is not None
        for name, value in top_assignments(mod.tree):
            if isinstance(value, ast.Call) and call_name(value) == "Flask":
                return Found(mod, name, flask=value)
    for mod in flask_mods:
        assert mod.tree is not None
        for name in FACTORIES:
            func = top_function(mod.tree, name)
            if func is not None:
                call = next((n for n in ast.walk(func)
                             if isinstance(n, ast.Call) and call_name(n) == "Flask"), None)
                return Found(mod, name, factory=True, flask=call)
    return None


def _factory_arguments(plan: Plan, found: Found) -> None:
    func = top_function(found.module.tree, found.attr) if found.module.tree else None
    if func is None:
        return
    args = func.args
    required = len(args.posonlyargs) + len(args.args) - len(args.defaults) + sum(
        1 for default in args.kw_defaults if default is None)
    if required:
        plan.hints.append(f"{found.module.name}.{func.name}() needs arguments, and the app is "
                          f"made by calling it with none: give them defaults, or point app.wsgi "
                          f"at a module-level app = {func.name}(...)")


def _generic(mods: list[Module]) -> tuple[Found | None, str]:
    asgi = ""
    for attr in ("application", "app"):
        for mod in mods:
            assert mod.tree is not None
            if attr not in top_names(mod.tree):
                continue
            value = dict(top_assignments(mod.tree)).get(attr)
            if value is not None and call_name(value) in ASGI:
                asgi = asgi or f"{mod.name}:{attr} = {call_name(value)}(...)"
                continue
            return Found(mod, attr), asgi
    return None, asgi


def _flask_extras(plan: Plan, found: Found, mods: list[Module]) -> None:
    mod, call = found.module, found.flask
    shown = relative(mod.path, plan.root) or mod.path.name
    _flask_static(plan, mod, call, shown)
    own = [m for m in mods if m.top == mod.top]
    _flask_instance(plan, mod, call, own)
    _flask_health(plan, own)
    text = "\n".join(m.text for m in own)
    command = (m.group(1) if (m := INIT_DB_RE.search(text)) else "init-db").replace("_", "-")
    plan.first_deploy = f"flask --app {mod.name} {command}"


def _flask_static(plan: Plan, mod: Module, call: ast.Call | None, shown: str) -> None:
    folder = constant(keyword(call, "static_folder")) if call else None
    if call is not None and keyword(call, "static_folder") is not None and folder is None:
        plan.guess("static", "none", f"static_folder in {shown} is not a plain path: Flask "
                                     f"serves its static files")
        return
    url = constant(keyword(call, "static_url_path")) if call else None
    url = "/" + (url.strip("/") + "/" if isinstance(url, str) and url.strip("/") else "static/")
    directory = mod.folder / (folder if isinstance(folder, str) else "static")
    rel = relative(directory, plan.root)
    if not directory.is_dir() or not rel:
        plan.guess("static", "none", f"no {relative(directory, plan.root) or directory} folder: "
                                     f"Flask serves its static files itself")
        return
    plan.serve(url, rel, "Flask's static folder, served by nginx instead of Flask")


def _flask_instance(plan: Plan, mod: Module, call: ast.Call | None, own: list[Module]) -> None:
    """Flask's instance folder of a package that is not installed: <dir holding it>/instance."""
    if call is not None and keyword(call, "instance_path") is not None:
        plan.hints.append(f"{mod.name} sets instance_path itself: make sure the app's user can "
                          f"write there (shared_dirs for a path inside the app)")
        return
    instance = mod.base / "instance"
    rel = relative(instance, plan.root)
    if rel is None:
        return
    uses = next((m for m in own if "instance_path" in m.text or "instance_relative_config" in m.text),
                None)
    if instance.is_dir():
        why = f"Flask's instance folder ({rel}/ exists): its data survives deploys"
    elif uses is not None:
        why = f"{relative(uses.path, plan.root)} uses the instance folder: its data survives deploys"
    else:
        return
    plan.share(rel, why)


def _flask_health(plan: Plan, own: list[Module]) -> None:
    routed = next((m for m in own if ROOT_ROUTE_RE.search(m.text)), None)
    if routed is not None:
        plan.guess("health.path", "/", f"a route for / in {relative(routed.path, plan.root)}")
        return
    plan.guess("health.path", "/", "no route for / seen: check it answers 200")
    plan.note("health", "a 404 on / fails the health check: set health.path to a URL that "
                        "answers 200")
