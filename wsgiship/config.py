"""hosts.yaml: load once, validate every key, freeze.

Errors name the file, the key path and what was expected, e.g.
``hosts.yaml: hosts.web1.port: expected an integer, got "ssh"``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# module path, then a callable, optionally called as a factory: pkg.mod:app or pkg.mod:create_app()
WSGI_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\(\))?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")
HOSTS_ENV = "WSGISHIP_HOSTS"


@dataclass(frozen=True)
class Health:
    path: str = "/"
    status: int = 200
    timeout: int = 60


HOOK_POINTS = ("before_switch", "after_switch")


@dataclass(frozen=True)
class Hook:
    """A command run at a hook point: on the server (in the release) or on this machine."""

    command: str
    local: bool = False


@dataclass(frozen=True)
class App:
    """The app's settings for one host (app section merged with that host's overrides)."""

    name: str
    source: Path
    wsgi: str
    python: str = "python3"
    server_name: str = "_"
    http_port: int = 80
    processes: int = 2
    threads: int = 1
    static: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    shared_files: tuple[str, ...] = ()
    shared_dirs: tuple[str, ...] = ()
    keep_releases: int = 5
    health: Health = Health()
    deploy_to: str = ""
    uwsgi: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    templates: Path | None = None
    app_user: str | None = None
    lock_stale_after: int = 3600
    hooks: Mapping[str, tuple[Hook, ...]] = field(default_factory=lambda: MappingProxyType({}))
    service_manager: str = "systemd"
    remove_default_site: bool = False

    @property
    def wsgi_module(self) -> str:
        return self.wsgi.split(":", 1)[0]

    @property
    def wsgi_callable(self) -> str:
        return self.wsgi.split(":", 1)[1].removesuffix("()")

    @property
    def wsgi_is_factory(self) -> bool:
        return self.wsgi.endswith("()")


@dataclass(frozen=True)
class Host:
    """How to reach one server, and the app as configured for it."""

    alias: str
    host: str
    app: App
    port: int | None = None
    user: str | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 15
    setup_user: str = "root"
    authorized_keys: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Inventory:
    path: Path
    app: Mapping[str, Any]
    hosts: Mapping[str, Mapping[str, Any]]

    def host(self, name: str) -> Host:
        """The Host for `name`: an alias from hosts.yaml, or a plain SSH host with app defaults."""
        if name in self.hosts:
            return _build_host(self, name, self.hosts[name])
        close = difflib.get_close_matches(name, list(self.hosts), n=1, cutoff=0.6)
        if close and not _looks_like_real_host(name):
            raise ConfigError(
                f"{_display(self.path)}: unknown host alias {name!r}; did you mean {close[0]!r}? "
                f"(known: {', '.join(sorted(self.hosts))})"
            )
        return _build_host(self, name, {"host": name})


# --- value checkers: each returns the cleaned value or raises _Bad(expected, got) ---


class _Bad(Exception):
    def __init__(self, expected: str, got: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = got  # the offending part, when it is not the whole value


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return str(value)


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\0" in value or "\n" in value:
        raise _Bad("a non-empty single-line string")
    return value


def _int_in(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("an integer")
        if not lo <= value <= hi:
            raise _Bad(f"an integer from {lo} to {hi}")
        return value

    return check


def _match(regex: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise _Bad(what)
        return value

    return check


def _relpath(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or re.search(r"[\0\n]", value):
        raise _Bad("a relative path")
    parts = Path(value).parts
    if value.startswith("/") or ".." in parts or not parts:
        raise _Bad("a relative path inside the app (no leading / and no ..)")
    return value.strip("/")


def _relpaths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Bad("a list of relative paths")
    return tuple(_relpath(v) for v in value)


def _abspath(value: Any) -> str:
    if (not isinstance(value, str) or not value.startswith("/") or ".." in Path(value).parts
            or re.search(r"[\0\n]", value)):
        raise _Bad("an absolute path such as /srv/myapp")
    if re.search(r"[\s'\"\\$`]", value):
        raise _Bad("a path without spaces, quotes, backslashes, $ or `")
    return value.rstrip("/") or "/"


def _relpaths_or_abs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Bad("a list of public key files")
    return tuple(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _static(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise _Bad("a mapping of URL prefix to directory, e.g. {/static: static}")
    out = {}
    for url, directory in value.items():
        if not isinstance(url, str) or not re.fullmatch(r"/[\w./-]*", url):
            raise _Bad(f"URL prefixes starting with / (got {_show(url)})")
        out[url.rstrip("/") + "/"] = _relpath(directory)
    return MappingProxyType(out)


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise _Bad("a string, number or true/false")


def _uwsgi(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Bad("a mapping of uWSGI option to value")
    out: dict[str, Any] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", key):
            raise _Bad(f"uWSGI option names like harakiri or buffer-size (got {_show(key)})")
        values = val if isinstance(val, list) else [val]
        if any("\n" in str(v) or "\0" in str(v) for v in values):
            raise _Bad("single-line values")
        out[key] = tuple(_scalar(v) for v in val) if isinstance(val, list) else _scalar(val)
    return MappingProxyType(out)


def _env(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise _Bad("a mapping of variable name to value")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            raise _Bad(f"variable names like DATABASE_URL (got {_show(key)})")
        if re.search(r"[\0\n]", str(_scalar(val))):
            raise _Bad("single-line values")
        out[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return MappingProxyType(out)


def _health(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad("a mapping with path, status and timeout")
    return value  # checked key by key in _build_health


def _hooks(value: Any) -> Mapping[str, tuple[Hook, ...]]:
    if not isinstance(value, dict):
        raise _Bad(f"a mapping of hook point ({', '.join(HOOK_POINTS)}) to a list of commands")
    out = {}
    for point, entries in value.items():
        if point not in HOOK_POINTS:
            raise _Bad(f"hook points {' or '.join(HOOK_POINTS)}", got=_show(point))
        if isinstance(entries, (str, dict)):
            entries = [entries]
        if not isinstance(entries, list):
            raise _Bad(f"a list of commands under {point}")
        hooks = []
        for entry in entries:
            if isinstance(entry, str) and entry.strip():
                hooks.append(Hook(entry))
            elif (isinstance(entry, dict) and len(entry) == 1 and next(iter(entry)) in
                  ("local", "remote") and isinstance(next(iter(entry.values())), str)
                  and next(iter(entry.values())).strip()):
                where, command = next(iter(entry.items()))
                hooks.append(Hook(command, local=where == "local"))
            else:
                raise _Bad(f"under {point}: a command string, or {{local: command}}",
                           got=_show(entry))
        out[point] = tuple(hooks)
    return MappingProxyType(out)


_APP_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": _match(NAME_RE, "a name of letters, digits, - and _"),
    "source": _str,
    "wsgi": _match(WSGI_RE, "module:callable or module:factory(), e.g. hello:app"),
    "python": _match(re.compile(r"^[\w./+-]+$"), "a python command such as python3 or python3.11"),
    "server_name": _match(re.compile(r"^[\w.*_ -]+$"), "nginx server names such as example.com"),
    "http_port": _int_in(1, 65535),
    "processes": _int_in(1, 512),
    "threads": _int_in(1, 512),
    "static": _static,
    "shared_files": _relpaths,
    "shared_dirs": _relpaths,
    "keep_releases": _int_in(2, 1000),
    "health": _health,
    "deploy_to": _abspath,
    "uwsgi": _uwsgi,
    "env": _env,
    "templates": _str,
    "app_user": _match(USER_RE, "a Unix user name"),
    "lock_stale_after": _int_in(60, 7 * 24 * 3600),
    "hooks": _hooks,
    "remove_default_site": _bool,
    "service_manager": _match(re.compile(r"systemd|supervisor"), "systemd or supervisor"),
}
_HEALTH_FIELDS: dict[str, Callable[[Any], Any]] = {
    "path": _match(re.compile(r"^/\S*$"), "a URL path starting with /"),
    "status": _int_in(100, 599),
    "timeout": _int_in(1, 3600),
}
_HOST_FIELDS: dict[str, Callable[[Any], Any]] = {
    "host": _match(re.compile(r"^[\w.:-]+$"), "a host name or IP address"),
    "port": _int_in(1, 65535),
    "user": _match(USER_RE, "a Unix user name"),
    "identity": _str,
    "known_hosts": _str,
    "connect_timeout": _int_in(1, 600),
    "setup_user": _match(USER_RE, "a Unix user name (root, or a user with full sudo)"),
    "authorized_keys": _relpaths_or_abs,
}


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _check_keys(path: Path, where: str, data: Mapping[str, Any],
                allowed: Mapping[str, Any]) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = (f"; did you mean {close[0]!r}?" if close
                    else f"; known keys: {', '.join(allowed)}")
            raise ConfigError(f"{_display(path)}: {where}{key}: unknown key{hint}")


def _clean(path: Path, where: str, data: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
    _check_keys(path, where, data, fields)
    out = {}
    for key, value in data.items():
        try:
            out[key] = fields[key](value)
        except _Bad as bad:
            raise ConfigError(
                f"{_display(path)}: {where}{key}: expected {bad.expected}, "
                f"got {bad.got or _show(value)}"
            ) from None
    return out


def _build_health(path: Path, where: str, value: Mapping[str, Any]) -> Health:
    return Health(**_clean(path, where + "health.", value, _HEALTH_FIELDS))


def _looks_like_real_host(name: str) -> bool:
    host = name.rsplit("@", 1)[-1]
    return "." in host or ":" in host or host == "localhost"


def _build_app(inv: Inventory, overrides: Mapping[str, Any], where: str) -> App:
    merged: dict[str, Any] = dict(inv.app)
    for key, value in overrides.items():
        if isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            value = MappingProxyType({**merged[key], **value})  # mappings merge one level
        merged[key] = value
    for required in ("name", "wsgi"):
        if required not in merged:
            raise ConfigError(f"{_display(inv.path)}: app.{required}: missing (required)")
    base = inv.path.parent
    health = merged.pop("health", {})
    merged["health"] = _build_health(inv.path, where if "health" in overrides else "app.", health)
    merged["source"] = (base / merged.get("source", ".")).resolve()
    if "templates" in merged:
        merged["templates"] = (base / merged["templates"]).resolve()
        if not merged["templates"].is_dir():
            raise ConfigError(
                f"{_display(inv.path)}: app.templates: directory {merged['templates']} not found"
            )
    merged.setdefault("deploy_to", f"/srv/{merged['name']}")
    merged["shared_files"] = tuple(merged.get("shared_files", ()))
    merged["shared_dirs"] = tuple(merged.get("shared_dirs", ()))
    return App(**merged)


def _build_host(inv: Inventory, alias: str, raw: Mapping[str, Any]) -> Host:
    where = f"hosts.{alias}."
    conn = {k: v for k, v in raw.items() if k in _HOST_FIELDS}
    overrides = {k: v for k, v in raw.items() if k not in _HOST_FIELDS}
    app = _build_app(inv, overrides, where)
    base = inv.path.parent
    for key in ("identity", "known_hosts"):
        if key in conn:
            conn[key] = (base / os.path.expanduser(conn[key])).resolve()
    if "authorized_keys" in conn:
        conn["authorized_keys"] = tuple((base / os.path.expanduser(k)).resolve()
                                        for k in conn["authorized_keys"])
    conn.setdefault("host", alias)
    return Host(alias=alias, app=app, **conn)


def default_path() -> Path:
    """hosts.yaml: $WSGISHIP_HOSTS, else the one beside the fabfile (the cwd)."""
    return Path(os.environ.get(HOSTS_ENV) or "hosts.yaml")


def load(path: Path | None = None) -> Inventory:
    """Read and validate hosts.yaml; raise ConfigError naming the file and key on any problem."""
    path = Path(path) if path else default_path()
    shown = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: not found; create it (see README: hosts.yaml) or set {HOSTS_ENV}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "unreadable"
        raise ConfigError(f"{shown}: invalid YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping with 'app' and 'hosts' at the top")
    _check_keys(path, "", data, {"app": 1, "hosts": 1})
    app_raw = data.get("app")
    if not isinstance(app_raw, dict):
        raise ConfigError(f"{shown}: app: expected a mapping of app settings, got {_show(app_raw)}")
    app = _clean(path, "app.", app_raw, _APP_FIELDS)
    if "health" in app:
        _build_health(path, "app.", app["health"])
    hosts_raw = data.get("hosts")
    hosts_raw = {} if hosts_raw is None else hosts_raw
    if not isinstance(hosts_raw, dict):
        raise ConfigError(f"{shown}: hosts: expected a mapping of alias to host settings")
    hosts: dict[str, Mapping[str, Any]] = {}
    all_fields = {**_HOST_FIELDS, **_APP_FIELDS}
    for alias, raw in hosts_raw.items():
        if not isinstance(alias, str) or not NAME_RE.fullmatch(alias.replace(".", "_")):
            raise ConfigError(f"{shown}: hosts: alias {_show(alias)} must be a simple name")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{shown}: hosts.{alias}: expected a mapping of settings, got {_show(raw)}"
            )
        cleaned = _clean(path, f"hosts.{alias}.", raw, all_fields)
        if "health" in cleaned:
            _build_health(path, f"hosts.{alias}.", cleaned["health"])
        hosts[alias] = MappingProxyType(cleaned)
    inv = Inventory(path=path.resolve(), app=MappingProxyType(app), hosts=MappingProxyType(hosts))
    for alias in hosts:  # build each once so every error surfaces at load time
        inv.host(alias)
    if "name" not in app or "wsgi" not in app:
        missing = "name" if "name" not in app else "wsgi"
        raise ConfigError(f"{shown}: app.{missing}: missing (required)")
    return inv
