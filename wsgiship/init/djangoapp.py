"""A Django project: manage.py, its settings module and wsgi.py; static files, the health path,
the hooks, and what the settings must allow (ALLOWED_HOSTS, a writable database)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from .djsettings import PathEval, Settings, module_file, read_settings
from .plan import Hook, Plan
from .scan import read_text, relative

SETTINGS_RE = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")
ADMIN_URLS_RE = re.compile(r"""path\(\s*r?['"]\^?([\w/-]*)\$?['"]\s*,\s*admin\.site\.urls""")
COLLECTSTATIC = "python manage.py collectstatic --noinput"
MIGRATE = "python manage.py migrate --noinput"
SUGGESTED_STATIC_ROOT = "staticfiles"


def detect(plan: Plan) -> bool:
    """Fill the plan for a Django project (manage.py at the root); False when it is not one."""
    root = plan.root
    manage = root / "manage.py"
    if not manage.is_file():
        return False
    match = SETTINGS_RE.search(read_text(manage))
    module = match.group(1) if match else _settings_by_search(root)
    settings = read_settings(root, module) if module else None
    if module is None or settings is None:
        plan.hints.append(f"manage.py names no settings module found under {root} "
                          f"(DJANGO_SETTINGS_MODULE): wsgi and static are guesses to check")
    plan.framework = "Django"
    source = f"manage.py: DJANGO_SETTINGS_MODULE={module}" if match else "manage.py"
    _wsgi(plan, module, settings, source)
    if settings is None:
        return True
    shown = _shown(settings.files[0], root)
    _database(plan, settings, shown)
    _static(plan, settings, shown)
    _health(plan, settings)
    _allowed_hosts(plan, settings, shown)
    return True


def _shown(path: Path, root: Path) -> str:
    return relative(path, root) or str(path)


def _settings_by_search(root: Path) -> str | None:
    found = sorted(p for p in root.glob("*/settings.py"))
    return f"{found[0].parent.name}.settings" if found else None


def _wsgi(plan: Plan, module: str | None, settings: Settings | None, source: str) -> None:
    root = plan.root
    named = settings.get("WSGI_APPLICATION") if settings else None
    if isinstance(named, str) and "." in named:
        wsgi_module, _, attr = named.rpartition(".")
        if module_file(root, wsgi_module):
            default = module is not None and named == f"{module.split('.')[0]}.wsgi.application"
            plan.use_wsgi(f"{wsgi_module}:{attr}", f"from {source}" if default
                          else f"from {source}, WSGI_APPLICATION = {named}")
            return
    candidates = [module.split(".")[0]] if module else []
    candidates += sorted(p.parent.name for p in root.glob("*/wsgi.py"))
    for package in candidates:
        if (root / package / "wsgi.py").is_file():
            plan.use_wsgi(f"{package}.wsgi:application", f"from {source}")
            return
    plan.guess("wsgi", plan.wsgi, "Django, but no wsgi.py found: set app.wsgi")


def _static(plan: Plan, settings: Settings, shown: str) -> None:
    url = settings.get("STATIC_URL")
    if isinstance(url, str) and url.startswith(("http://", "https://", "//")):
        plan.guess("static", "none", f"STATIC_URL is {url}: static files are served from there")
        return
    url = "/" + (url.strip("/") + "/" if isinstance(url, str) and url.strip("/") else "static/")
    if not settings.has("STATIC_ROOT"):
        _no_static_root(plan, url, shown, f"STATIC_ROOT is not set in {shown}")
        return
    static_root = _path(settings.get("STATIC_ROOT"), plan.root)
    rel = relative(static_root, plan.root) if static_root else None
    if static_root is None or not rel or rel == ".":
        where = settings.where("STATIC_ROOT", plan.root)
        reason = (f"STATIC_ROOT ({where}) is {static_root}, outside the app" if static_root
                  else f"STATIC_ROOT ({where}) could not be read")
        _no_static_root(plan, url, shown, reason)
        return
    if not plan.serve(url, rel, f"STATIC_URL and STATIC_ROOT in {shown}, served by nginx"):
        return
    plan.share(rel, "collectstatic writes STATIC_ROOT; the release is read-only to the app")
    plan.before_switch.insert(0, Hook(COLLECTSTATIC))


def _no_static_root(plan: Plan, url: str, shown: str, reason: str) -> None:
    suggested = SUGGESTED_STATIC_ROOT
    setting = f'STATIC_ROOT = BASE_DIR / "{suggested}"'
    plan.guess("static", "none", reason)
    plan.hints.append(f"{reason}: set {setting} in {shown}, then uncomment the static lines in "
                      f"hosts.yaml (nginx serves {url} from it; collectstatic fills it on each "
                      f"deploy)")
    plan.blocks.append([
        f"{reason}. Set {setting} there,",
        "then uncomment these (nginx serves the files collectstatic gathers there):",
        f'static: {{"{url}": "{suggested}"}}',
        *([f"shared_dirs: [{suggested}]"] if not plan.shared_dirs else []),
        *([f"and add {suggested} to shared_dirs,"] if plan.shared_dirs else []),
        "and add under hooks.before_switch, first:",
        f"  - {COLLECTSTATIC}",
    ])


def _path(value: Any, root: Path) -> Path | None:
    """A path setting as an absolute path; a relative one is relative to the release (the cwd
    of uWSGI and of the hooks), that is, to the app's root."""
    if isinstance(value, Path):
        return value if value.is_absolute() else root / value
    if isinstance(value, str) and value:
        return Path(value) if value.startswith("/") else root / value
    return None


def _database(plan: Plan, settings: Settings, shown: str) -> None:
    """migrate writes the database: a SQLite file must live in a shared dir (the release is
    read-only to the app), so one in the app's root turns the migrate hook off."""
    databases = settings.nodes.get("DATABASES")
    engine, name = _default_database(databases, settings, plan.root)
    if not engine.endswith("sqlite3") or name is None:
        plan.before_switch.append(Hook(MIGRATE))
        return
    rel = relative(name, plan.root)
    if rel is None:  # outside the app: the server's own path
        plan.before_switch.append(Hook(MIGRATE))
        return
    folder = rel.rpartition("/")[0]
    if folder:
        plan.share(folder, f"the SQLite database {rel} is written by migrate and the app")
        plan.before_switch.append(Hook(MIGRATE))
        return
    off = (f"SQLite {rel} would be in the release, read-only to the app; with NAME = "
           f'BASE_DIR / "data" / "{rel}" and data in shared_dirs, migrate can write it')
    plan.before_switch.append(Hook(MIGRATE, off=off))
    plan.hints.append(
        f"DATABASES in {shown} puts SQLite at {rel}, inside the release (read-only to the app): "
        f'use BASE_DIR / "data" / "{rel}", add data to shared_dirs and uncomment the migrate '
        f"hook in hosts.yaml (or use a database server)")


def _default_database(node: Any, settings: Settings, root: Path) -> tuple[str, Path | None]:
    if not isinstance(node, ast.Dict):
        return "", None
    for key, value in zip(node.keys, node.values, strict=True):
        if isinstance(key, ast.Constant) and key.value == "default" and isinstance(value, ast.Dict):
            fields = {k.value: v for k, v in zip(value.keys, value.values, strict=True)
                      if isinstance(k, ast.Constant)}
            engine = fields.get("ENGINE")
            engine_name = engine.value if isinstance(engine, ast.Constant) else ""
            name_node = fields.get("NAME")
            path = None
            if name_node is not None:
                file = settings.lines["DATABASES"][0]
                path = _path(PathEval(file, settings.values).eval(name_node), root)
            return str(engine_name), path
    return "", None


def _health(plan: Plan, settings: Settings) -> None:
    apps = settings.get("INSTALLED_APPS")
    admin = ("django.contrib.admin" in apps if isinstance(apps, list | tuple)
             else re.search(r"""['"]django\.contrib\.admin['"]""", settings.text) is not None)
    urlconf = settings.get("ROOT_URLCONF")
    urls = module_file(plan.root, urlconf) if isinstance(urlconf, str) else None
    match = ADMIN_URLS_RE.search(read_text(urls)) if urls and admin else None
    if match:
        prefix = match.group(1).strip("/")
        plan.health_path = f"/{prefix}/login/" if prefix else "/login/"
        plan.guess("health.path", plan.health_path,
                   f"the admin is installed, its urls in {_shown(urls, plan.root)}: its login "
                   f"page answers 200 on a fresh project")
        return
    plan.guess("health.path", "/", "no admin urls found: / must answer 200")
    plan.note("health", "a 404 on / fails the health check: set health.path to a URL that "
                        "answers 200")


def _allowed_hosts(plan: Plan, settings: Settings, shown: str) -> None:
    allowed = settings.get("ALLOWED_HOSTS")
    names = plan.server_name.split()
    if isinstance(allowed, list | tuple) and not allowed and settings.get("DEBUG") is True:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django allows then
    if isinstance(allowed, list | tuple) and all(_allowed(n, allowed) for n in names):
        return
    plan.hints.append(f"ALLOWED_HOSTS in {shown} must include the server_name "
                      f"({' '.join(names)}): Django answers 400 to other hosts")


def _allowed(name: str, allowed: Any) -> bool:
    for pattern in allowed:
        if not isinstance(pattern, str):
            continue
        if pattern == "*" or pattern == name or (
                pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern))):
            return True
    return False
