"""The shape of hosts.yaml: what each key accepts. A checker returns the cleaned value or
raises Bad(expected, got); config.py turns that into an error naming the file and key."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import managers

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# module path, then a callable, optionally called as a factory: pkg.mod:app or pkg.mod:create_app()
WSGI_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\(\))?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAFE_PATH_RE = re.compile(r"[A-Za-z0-9._/-]+")
# every character str.splitlines() splits at: none may be inside a one-line value
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")
# in the order they run: first_deploy only on a host with no current release
HOOK_POINTS = ("first_deploy", "before_switch", "after_switch")
INSTALL_MODES = ("requirements", "project")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# a group's batch / max_fail: a count ("2") or a share of the group's hosts ("25%")
COUNT_RE = re.compile(r"^([0-9]+)(%?)$")
ON_FAILURE = ("rollback", "stop")


@dataclass(frozen=True)
class Hook:
    """A command run at a hook point: on the server (in the release) or on this machine."""

    command: str
    local: bool = False


# --- value checkers: each returns the cleaned value or raises Bad(expected, got) ---


class Bad(Exception):
    def __init__(self, expected: str, got: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = got  # the offending part, when it is not the whole value


def show(value: Any) -> str:
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
        raise Bad("a non-empty single-line string")
    return value


def _number_in(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Bad("a number")
        if not lo <= value <= hi:
            raise Bad(f"a number from {lo:g} to {hi:g}")
        return float(value)

    return check


def _int_in(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad("an integer")
        if not lo <= value <= hi:
            raise Bad(f"an integer from {lo} to {hi}")
        return value

    return check


def _match(regex: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise Bad(what)
        return value

    return check


def _wsgi(value: Any) -> str:
    """module:callable or module:factory(); a file path given as the module (hello.py:app,
    pkg/wsgi.py:application) is answered with its dotted name."""
    module, _, name = value.partition(":") if isinstance(value, str) else ("", "", "")
    dotted = f"{module.removeprefix('./').removesuffix('.py').replace('/', '.')}:{name}"
    if (module.endswith(".py") or "/" in module) and WSGI_RE.fullmatch(dotted):
        raise Bad(f"module:callable with the module's dotted name, not a file path "
                  f"(here: {dotted})")
    return _match(WSGI_RE, "module:callable or module:factory(), e.g. hello:app")(value)


def _relpath(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or re.search(r"[\0\n]", value):
        raise Bad("a relative path")
    parts = Path(value).parts
    if value.startswith("/") or ".." in parts or not parts:
        raise Bad("a relative path inside the app (no leading / and no ..)")
    return value.strip("/")


def _relpaths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Bad("a list of relative paths")
    return tuple(_relpath(v) for v in value)


def _abspath(value: Any) -> str:
    if (not isinstance(value, str) or not value.startswith("/") or ".." in Path(value).parts
            or re.search(r"[\0\n]", value)):
        raise Bad("an absolute path such as /srv/myapp")
    if not SAFE_PATH_RE.fullmatch(value):
        raise Bad("a path of letters, digits and . _ - / only (it goes into shell scripts, "
                  "sudo rules and the nginx site)")
    return value.rstrip("/") or "/"


def _relpaths_or_abs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise Bad("a list of public key files")
    return tuple(value)


def _one_of(names: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in names:
            raise Bad(" or ".join(names))
        return value

    return check


def _install(value: Any) -> str:
    if value not in INSTALL_MODES:
        raise Bad("requirements (the venv gets the app's requirements; the app runs from its "
                  "directory) or project (the app itself is installed too, into each release)")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Bad("true or false")
    return value


def _static(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise Bad("a mapping of URL prefix to directory, e.g. {/static: static}")
    out = {}
    for url, directory in value.items():
        if not isinstance(url, str) or not re.fullmatch(r"/[\w./-]*", url):
            raise Bad(f"URL prefixes starting with / (got {show(url)})")
        path = _relpath(directory)
        if not SAFE_PATH_RE.fullmatch(path):
            raise Bad(f"directories of letters, digits and . _ - / only (got {show(directory)})")
        out[url.rstrip("/") + "/"] = path
    return MappingProxyType(out)


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise Bad("a string, number or true/false")


def _uwsgi(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise Bad("a mapping of uWSGI option to value")
    out: dict[str, Any] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", key):
            raise Bad(f"uWSGI option names like harakiri or buffer-size (got {show(key)})")
        values = val if isinstance(val, list) else [val]
        if any(ch in str(v) for v in values for ch in "\0" + LINE_BREAKS):
            raise Bad("single-line values")
        out[key] = tuple(_scalar(v) for v in val) if isinstance(val, list) else _scalar(val)
    return MappingProxyType(out)


def _env(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise Bad("a mapping of variable name to value")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            raise Bad(f"variable names like DATABASE_URL (got {show(key)})")
        text = str(_scalar(val))
        if "\0" in text or any(ch in text for ch in LINE_BREAKS):
            raise Bad(f"single-line values (got a line break or NUL in {key})")
        out[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return MappingProxyType(out)


def _tls(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Bad("a mapping with email (a certificate from Let's Encrypt), or certificate and "
                  "key (your own)")
    return value  # checked key by key in config (tls.build)


def _email(value: Any) -> str:
    if not isinstance(value, str) or not EMAIL_RE.fullmatch(value):
        raise Bad("an email address such as ops@example.com (the ACME account's)")
    return value


def _https_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https://[\w.:/~%+=&?@-]+", value):
        raise Bad("an ACME directory URL starting with https://")
    return value


def _health(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Bad("a mapping with path, status and timeout")
    return value  # checked key by key in _build_health


def _hooks(value: Any) -> Mapping[str, tuple[Hook, ...]]:
    if not isinstance(value, dict):
        raise Bad(f"a mapping of hook point ({', '.join(HOOK_POINTS)}) to a list of commands")
    out = {}
    for point, entries in value.items():
        if point not in HOOK_POINTS:
            raise Bad(f"hook points {', '.join(HOOK_POINTS[:-1])} or {HOOK_POINTS[-1]}",
                      got=show(point))
        if isinstance(entries, (str, dict)):
            entries = [entries]
        if not isinstance(entries, list):
            raise Bad(f"a list of commands under {point}")
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
                raise Bad(f"under {point}: a command string, or {{local: command}}",
                           got=show(entry))
        out[point] = tuple(hooks)
    return MappingProxyType(out)


APP_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": _match(NAME_RE, "a name of letters, digits, - and _"),
    "source": _str,
    "wsgi": _wsgi,
    "python": _match(re.compile(r"^[\w./+-]+$"), "a python command such as python3 or python3.11"),
    "server_name": _match(re.compile(r"^[\w.*_ -]+$"), "nginx server names such as example.com"),
    "http_port": _int_in(1, 65535),
    "https_port": _int_in(1, 65535),
    "tls": _tls,
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
    "service_manager": _one_of(managers.names()),
    "uwsgi_package": _one_of(("pyuwsgi", "uwsgi")),
    "build": _bool,
    "installer": _one_of(("auto", "uv", "pip")),
    "wheelhouse": _bool,
    "install": _install,
}
HEALTH_FIELDS: dict[str, Callable[[Any], Any]] = {
    "path": _match(re.compile(r"^/\S*$"), "a URL path starting with /"),
    "status": _int_in(100, 599),
    "timeout": _int_in(1, 3600),
    "watch": _int_in(0, 3600),
    "max_5xx_percent": _number_in(0, 100),
}
TLS_FIELDS: dict[str, Callable[[Any], Any]] = {
    "email": _email,
    "acme_server": _https_url,
    "certificate": _str,
    "key": _str,
    "redirect": _bool,
    "hsts": _int_in(0, 5 * 365 * 24 * 3600),
}
HOST_FIELDS: dict[str, Callable[[Any], Any]] = {
    "host": _match(re.compile(r"^[\w.:-]+$"), "a host name or IP address"),
    "port": _int_in(1, 65535),
    "user": _match(USER_RE, "a Unix user name"),
    "identity": _str,
    "known_hosts": _str,
    "connect_timeout": _int_in(1, 600),
    "setup_user": _match(USER_RE, "a Unix user name (root, or a user with full sudo)"),
    "authorized_keys": _relpaths_or_abs,
    "forward_agent": _bool,
}




def _count(minimum: int) -> Callable[[Any], str]:
    """A count of hosts (an integer >= minimum) or a percentage of them, kept as text."""

    def check(value: Any) -> str:
        text = str(value).strip() if isinstance(value, (int, str)) else ""
        match = COUNT_RE.fullmatch(text) if not isinstance(value, bool) else None
        number = int(match.group(1)) if match else -1
        if not match or number < minimum or (match.group(2) and number > 100):
            raise Bad(f"an integer >= {minimum} or a percentage of the group's hosts such as "
                      f'"25%"')
        return f"{number}{match.group(2)}"

    return check


def _members(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise Bad("a list of host aliases or group names")
    return value  # checked name by name against the hosts and groups (groups.py)


GROUP_FIELDS: dict[str, Callable[[Any], Any]] = {
    "hosts": _members,
    "batch": _count(1),
    "max_fail": _count(0),
    "on_failure": _one_of(ON_FAILURE),
}


def count_of(value: str, total: int, *, minimum: int, rounding: str = "ceil") -> int:
    """How many of `total` hosts a batch / max_fail value means: "3" is 3, "25%" of 10 is 3
    with rounding="ceil" (a batch) or 2 with "floor" (max_fail); never below `minimum`, never
    above `total` (unless `minimum` is)."""
    if rounding not in ("ceil", "floor"):
        raise ValueError(f"rounding: ceil or floor, not {rounding!r}")
    text = value.strip()
    if text.endswith("%"):
        share = total * int(text[:-1])
        number = -(-share // 100) if rounding == "ceil" else share // 100
    else:
        number = int(text)
    return max(minimum, min(number, total))
