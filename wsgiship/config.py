"""hosts.yaml: load once, validate every key, freeze.

Errors name the file, the key path and what was expected, e.g.
``hosts.yaml: hosts.web1.port: expected an integer, got "ssh"``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from . import schema
from . import tls as tlsconf
from .errors import ConfigError
from .groups import Definition, Group, expand_groups
from .schema import APP_FIELDS, HEALTH_FIELDS, HOOK_POINTS, HOST_FIELDS, NAME_RE, TLS_FIELDS, Bad, Hook, show
from .tls import Tls

__all__ = ["HOOK_POINTS", "App", "Group", "Health", "Hook", "Host", "Inventory", "Tls", "load"]

HOSTS_ENV = "WSGISHIP_HOSTS"


@dataclass(frozen=True)
class Health:
    path: str = "/"
    status: int = 200
    timeout: int = 60
    watch: int = 0                  # seconds the previous release stays warm after the switch
    max_5xx_percent: float = 1.0    # above this share of 5xx answers in the watch: switch back


@dataclass(frozen=True)
class App:
    """The app's settings for one host (app section merged with that host's overrides)."""

    name: str
    source: Path
    wsgi: str
    python: str = "python3"
    server_name: str = "_"
    http_port: int = 80
    https_port: int = 443
    # HTTPS: a certificate from an ACME server (tls.email) or your own (tls.certificate/key)
    tls: Tls | None = None
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
    # uWSGI from its manylinux wheels (pyuwsgi: no compiler), or compiled from its sdist (uwsgi)
    uwsgi_package: str = "pyuwsgi"
    # fab setup installs a compiler (build-essential python3-dev): for sdist-only C extensions
    build: bool = False
    # uv when setup installed it (auto), or always one of them
    installer: str = "auto"
    # wheels resolved on this machine for the server's platform, installed with --no-index
    wheelhouse: bool = False
    # requirements: the venv gets the app's requirements, the app runs from its directory;
    # project: the app itself is installed too, into each release (<release>/.wsgiship/site)
    install: str = "requirements"

    @property
    def needs_compiler(self) -> bool:
        return self.build or self.uwsgi_package == "uwsgi"

    @property
    def wsgi_module(self) -> str:
        return self.wsgi.split(":", 1)[0]

    @property
    def wsgi_callable(self) -> str:
        return self.wsgi.split(":", 1)[1].removesuffix("()")

    @property
    def wsgi_is_factory(self) -> bool:
        return self.wsgi.endswith("()")

    def runs_as(self, login_user: str = "") -> str:
        """The user the app runs as: app_user, else its own, `wsgiship-<name>` (never the login
        user by default: the app must not be able to write its own code)."""
        return self.app_user or default_app_user(self.name)


def default_app_user(name: str) -> str:
    """The app's own user: `wsgiship-<name>`, a Unix name (lower case, at most 32 characters);
    when the name had to change to become one, a hash of the name keeps two apps apart."""
    user = f"wsgiship-{name.lower().replace('_', '-')}"
    if user == f"wsgiship-{name}" and len(user) <= 32:
        return user
    return f"{user[:25].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


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
    forward_agent: bool = False


@dataclass(frozen=True)
class Inventory:
    path: Path
    app: Mapping[str, Any]
    hosts: Mapping[str, Mapping[str, Any]]
    groups: Mapping[str, Group] = field(default_factory=lambda: MappingProxyType({}))

    def host(self, name: str) -> Host:
        """The Host for `name`: an alias from hosts.yaml, or a plain SSH host with app defaults."""
        if name in self.hosts:
            return _build_host(self, name, self.hosts[name])
        known = [*self.hosts, *self.groups]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close and not _looks_like_real_host(name):
            raise ConfigError(
                f"{_display(self.path)}: unknown host alias {name!r}; did you mean {close[0]!r}? "
                f"(known: {', '.join(sorted(known))})"
            )
        return _build_host(self, name, {"host": name})

    def expand(self, names: Sequence[str]) -> list[str]:
        """Each group name as its hosts, other names (aliases, plain hosts) as they are; each
        once, in order."""
        out: list[str] = []
        for name in names:
            out += self.groups[name].members if name in self.groups else [name]
        return list(dict.fromkeys(out))

    def group_for(self, names: Sequence[str]) -> Group | None:
        """The Group when `names` is exactly one group name (its defaults apply), else None."""
        names = list(names)
        return self.groups.get(names[0]) if len(names) == 1 else None


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
        except Bad as bad:
            raise ConfigError(
                f"{_display(path)}: {where}{key}: expected {bad.expected}, "
                f"got {bad.got or show(value)}"
            ) from None
    return out


def _build_health(path: Path, where: str, value: Mapping[str, Any]) -> Health:
    return Health(**_clean(path, where + "health.", value, HEALTH_FIELDS))


def _build_tls(path: Path, where: str, value: Mapping[str, Any]) -> Tls:
    origin = f"{_display(path)}: {where}"
    return tlsconf.build(_clean(path, where + "tls.", value, TLS_FIELDS), path.parent, origin)


def _looks_like_real_host(name: str) -> bool:
    host = name.rsplit("@", 1)[-1]
    return "." in host or ":" in host or host == "localhost"


def _build_app(inv: Inventory, overrides: Mapping[str, Any], where: str) -> App:
    merged: dict[str, Any] = dict(inv.app)
    for key, value in overrides.items():
        if key == "tls" and isinstance(value, Mapping):
            value = tlsconf.merge(merged.get(key), value)
        elif isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
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
    if "tls" in merged:
        merged["tls"] = _app_tls(inv.path, merged, overrides, where)
    merged["shared_files"] = tuple(merged.get("shared_files", ()))
    merged["shared_dirs"] = tuple(merged.get("shared_dirs", ()))
    return App(**merged)


def _app_tls(path: Path, merged: Mapping[str, Any], overrides: Mapping[str, Any],
             where: str) -> Tls:
    """The app's Tls, checked against its names and ports (errors name where each came from)."""
    tls = _build_tls(path, where if "tls" in overrides else "app.", merged["tls"])
    ports = where if {"http_port", "https_port"} & set(overrides) else "app."
    tlsconf.check_app(tls, merged.get("server_name", "_"), merged.get("http_port", 80),
                      merged.get("https_port", 443), f"{_display(path)}: {ports}")
    return tls


def _build_host(inv: Inventory, alias: str, raw: Mapping[str, Any]) -> Host:
    where = f"hosts.{alias}."
    conn = {k: v for k, v in raw.items() if k in HOST_FIELDS}
    overrides = {k: v for k, v in raw.items() if k not in HOST_FIELDS}
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
    _check_keys(path, "", data, {"app": 1, "hosts": 1, "groups": 1})
    app_raw = data.get("app")
    if not isinstance(app_raw, dict):
        raise ConfigError(f"{shown}: app: expected a mapping of app settings, got {show(app_raw)}")
    app = _clean(path, "app.", app_raw, APP_FIELDS)
    if "health" in app:
        _build_health(path, "app.", app["health"])
    if "tls" in app:
        _build_tls(path, "app.", app["tls"])
    hosts_raw = data.get("hosts")
    hosts_raw = {} if hosts_raw is None else hosts_raw
    if not isinstance(hosts_raw, dict):
        raise ConfigError(f"{shown}: hosts: expected a mapping of alias to host settings")
    hosts: dict[str, Mapping[str, Any]] = {}
    all_fields = {**HOST_FIELDS, **APP_FIELDS}
    for alias, raw in hosts_raw.items():
        if not isinstance(alias, str) or not NAME_RE.fullmatch(alias.replace(".", "_")):
            raise ConfigError(f"{shown}: hosts: alias {show(alias)} must be a simple name")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{shown}: hosts.{alias}: expected a mapping of settings, got {show(raw)}"
            )
        cleaned = _clean(path, f"hosts.{alias}.", raw, all_fields)
        if "health" in cleaned:
            _build_health(path, f"hosts.{alias}.", cleaned["health"])
        hosts[alias] = MappingProxyType(cleaned)
    groups = expand_groups(shown, _group_definitions(path, data.get("groups"), hosts), list(hosts))
    inv = Inventory(path=path.resolve(), app=MappingProxyType(app), hosts=MappingProxyType(hosts),
                    groups=MappingProxyType(groups))
    for alias in hosts:  # build each once so every error surfaces at load time
        inv.host(alias)
    if "name" not in app or "wsgi" not in app:
        missing = "name" if "name" not in app else "wsgi"
        raise ConfigError(f"{shown}: app.{missing}: missing (required)")
    return inv


def _group_definitions(path: Path, raw: Any, hosts: Mapping[str, Any]) -> list[Definition]:
    """`groups:` as written, each name and mapping checked (the members by expand_groups)."""
    shown = _display(path)
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: groups: expected a mapping of group name to a list of "
                          f"hosts, got {show(raw)}")
    defs = []
    for name, value in raw.items():
        if not isinstance(name, str) or not NAME_RE.fullmatch(name.replace(".", "_")):
            raise ConfigError(f"{shown}: groups: name {show(name)} must be a simple name")
        if name in hosts:
            raise ConfigError(f"{shown}: groups.{name}: a host alias has this name; give the "
                              f"group another one")
        if isinstance(value, dict):
            settings = _clean(path, f"groups.{name}.", value, schema.GROUP_FIELDS)
            if "hosts" not in settings:
                raise ConfigError(f"{shown}: groups.{name}.hosts: missing (required): a list of "
                                  f"host aliases or group names")
            members = settings.pop("hosts")
            defs.append(Definition(name, f"groups.{name}.hosts", tuple(members), settings))
        elif isinstance(value, list):
            defs.append(Definition(name, f"groups.{name}", tuple(value), {}))
        else:
            raise ConfigError(f"{shown}: groups.{name}: expected a list of host aliases or group "
                              f"names, or a mapping with hosts, got {show(value)}")
    return defs
