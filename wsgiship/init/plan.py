"""What `wsgiship init` found in an app's directory and will write into its hosts.yaml.

A Plan holds the values, each guess with the reason it was made (printed, one line each, and
written beside the key in hosts.yaml), and the hints to print.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InitError
from ..schema import APP_FIELDS, HOST_FIELDS, NAME_RE, Bad

CHANGE_ME = "CHANGE_ME:app"
PLACEHOLDER_HOST = "web1.example.com"
DEFAULT_USER = "deploy"


@dataclass(frozen=True)
class Guess:
    """One value init settled on, and why: `wsgi: shop.wsgi:application (from manage.py: ...)`."""

    key: str
    value: str
    why: str

    def line(self) -> str:
        return f"{self.key}: {self.value} ({self.why})"


@dataclass(frozen=True)
class Hook:
    command: str
    off: str = ""  # why it is written commented out ("" = active)


@dataclass
class HostEntry:
    """The host entry of hosts.yaml: from --host, else a placeholder to change."""

    alias: str = "web1"
    host: str = PLACEHOLDER_HOST
    user: str = DEFAULT_USER
    port: int | None = None
    given: bool = False


@dataclass
class Plan:
    root: Path
    name: str = "app"
    wsgi: str = CHANGE_ME
    framework: str = ""                     # Django, Flask, WSGI, or "" (nothing found)
    server_name: str = "localhost"
    server_name_given: bool = False
    host: HostEntry = field(default_factory=HostEntry)
    requirements: str = ""                  # requirements.txt, pyproject.toml or ""
    static: dict[str, str] = field(default_factory=dict)
    shared_dirs: list[str] = field(default_factory=list)
    health_path: str = "/"
    before_switch: list[Hook] = field(default_factory=list)
    first_deploy: str = ""                  # a commented example of the first_deploy hook
    src_layout: bool = False
    git: bool = False
    guesses: list[Guess] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    # comment lines written above a key of the app section (key -> lines)
    notes: dict[str, list[str]] = field(default_factory=dict)
    # comment blocks written at the end of the app section (e.g. what to add once X is set)
    blocks: list[list[str]] = field(default_factory=list)

    def guess(self, key: str, value: str, why: str) -> None:
        self.guesses.append(Guess(key, value, why))

    def why(self, key: str) -> str:
        """The reason of the last guess about `key` ("" when there is none)."""
        return next((g.why for g in reversed(self.guesses) if g.key == key), "")

    def note(self, key: str, *lines: str) -> None:
        self.notes.setdefault(key, []).extend(lines)

    def use_wsgi(self, value: str, why: str) -> None:
        if fits("wsgi", value):
            self.wsgi = value
            self.guess("wsgi", value, why)
        else:
            self.guess("wsgi", self.wsgi, f"{value} ({why}) is not module:callable: set app.wsgi")

    def serve(self, url: str, directory: str, why: str) -> bool:
        """nginx serves `url` from `directory` (False when hosts.yaml cannot say so)."""
        if not fits("static", {url: directory}):
            self.guess("static", "none", f"{url} -> {directory} ({why}) is not what static takes")
            self.hints.append(f"static: {url} -> {directory} cannot go into hosts.yaml (a URL "
                              f"and a directory of letters, digits and . _ - /): add it yourself "
                              f"under another name")
            return False
        self.static[url] = directory
        self.guess("static", f"{url} -> {directory}", why)
        return True

    def share(self, directory: str, why: str) -> None:
        if not fits("shared_dirs", [directory]):
            self.hints.append(f"{directory} ({why}) cannot be a shared dir: add it yourself")
        elif directory not in self.shared_dirs:
            self.shared_dirs.append(directory)
            self.guess("shared_dirs", directory, why)


def fits(key: str, value: Any) -> bool:
    """hosts.yaml accepts `value` for app.<key>."""
    try:
        APP_FIELDS[key](value)
    except Bad:
        return False
    return True


def sanitize_name(raw: str) -> str:
    """An app name the schema accepts (letters, digits, - and _), made from any text."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-_")
    return name or "app"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise InitError(f"--name {name!r}: expected letters, digits, - and _ (e.g. shop)")
    return name


def check_server_name(names: str) -> str:
    try:
        return APP_FIELDS["server_name"](names.strip())
    except Bad:
        raise InitError(f"--server-name {names!r}: expected nginx server names such as "
                        f"'example.com www.example.com'") from None


def parse_host(spec: str) -> HostEntry:
    """--host [USER@]HOST[:PORT] (an IPv6 address in brackets when a port follows)."""
    text = spec.strip()
    user, _, rest = text.rpartition("@")
    port_text = ""
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":") if tail.startswith(":") else tail
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host = rest
    what = "expected [USER@]HOST[:PORT], e.g. deploy@web1.example.com:2222"
    try:
        host = HOST_FIELDS["host"](host)
        if user:
            user = HOST_FIELDS["user"](user)
        port = HOST_FIELDS["port"](int(port_text)) if port_text else None
    except (Bad, ValueError):
        raise InitError(f"--host {spec!r}: {what}") from None
    return HostEntry(alias=host_alias(host), host=host, user=user or DEFAULT_USER, port=port,
                     given=True)


def host_alias(host: str) -> str:
    """The alias of a host in hosts.yaml: the first label of its name; web1 for an address."""
    try:
        ipaddress.ip_address(host)
        return "web1"
    except ValueError:
        pass
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", host.split(".")[0]).strip("-_")
    return label or "web1"
