"""The app's variables as `fab env`, `fab exec --env` and `fab put` take them: names and values
checked, KEY=VALUE lines written so that wsgi.py's loader reads back the exact value, and the
listing, masked. Pure functions; nothing here ever puts a value in a message."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

from .errors import WsgishipError
from .schema import ENV_NAME_RE, LINE_BREAKS

SHARED_ENV = ".env"  # the shared file `fab env` edits: releases link to it (shared_files)
MAX_PUT = 64 << 20   # fab put is for secrets and config files, not for data
RESERVED = ("log", "run")  # shared/log and shared/run are wsgiship's (the app's log, its sockets)


def check_name(key: str, option: str) -> str:
    """A variable name (letters, digits and _, not starting with a digit), or an error."""
    if not ENV_NAME_RE.fullmatch(key):
        raise WsgishipError(f"{option} {key!r}: not a variable name (letters, digits and _, "
                            f"not starting with a digit, e.g. DATABASE_URL)")
    return key


def check_value(key: str, value: str, option: str) -> str:
    """A value of one line (the env files hold one variable a line), or an error naming only
    the variable."""
    if "\0" in value or any(ch in value for ch in LINE_BREAKS):
        raise WsgishipError(f"{option} {key}: the value has a line break (or a NUL byte); a "
                            f"value must be one line: encode it (e.g. base64), or put the file "
                            f"with fab put and name its path in the variable")
    return value


def parse_assignment(text: str, option: str, environ: Mapping[str, str] | None = None,
                     ask: Callable[[str], str] | None = None) -> tuple[str, str]:
    """`KEY=VALUE`, or `KEY` alone: its value from the local environment, else asked for (no
    echo) through `ask` when given. The name is checked, and the value has no line break."""
    key, sep, value = text.partition("=")
    if not sep and not ENV_NAME_RE.fullmatch(key):
        # maybe a value given without its name: never shown
        raise WsgishipError(f"{option} takes KEY=VALUE (or KEY, to take the value from your "
                            f"environment): what was given has no '=' and is no variable name")
    check_name(key, option)
    if not sep:
        found = (os.environ if environ is None else environ).get(key)
        if found is None and ask is None:
            raise WsgishipError(f"{option} {key}: {key} is not set in your environment; give "
                                f"{option} {key}=VALUE, or export {key} first")
        value = found if found is not None else ask(key)  # type: ignore[misc]
    return key, check_value(key, value, option)


def assignments(texts: Iterable[str], option: str, environ: Mapping[str, str] | None = None,
                ask: Callable[[str], str] | None = None) -> dict[str, str]:
    """Several --set / --env values; a name given twice is a mistake."""
    out: dict[str, str] = {}
    for text in texts:
        key, value = parse_assignment(text, option, environ, ask)
        if key in out:
            raise WsgishipError(f"{option} {key}: given twice")
        out[key] = value
    return out


def env_line(key: str, value: str) -> str:
    """`KEY=VALUE` as wsgi.py's loader reads back exactly VALUE: quoted ('...') only when the
    loader would otherwise change it (spaces around it, or quotes around it)."""
    stripped = value != value.strip()
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"
    return f"{key}='{value}'" if stripped or quoted else f"{key}={value}"


def env_text(values: Mapping[str, str]) -> str:
    """An env file's text: one KEY=VALUE line per variable."""
    return "".join(env_line(k, v) + "\n" for k, v in values.items())


def shared_name(remote_path: str) -> str:
    """NAME from `shared/NAME`: a relative path inside the app's shared directory, not one of
    wsgiship's own dirs there. An error otherwise."""
    what = f"--remote {remote_path!r}"
    if not remote_path.startswith("shared/"):
        raise WsgishipError(f"{what}: give shared/NAME (files go into the app's shared "
                            f"directory; releases link those listed in app.shared_files)")
    name = remote_path.removeprefix("shared/")
    parts = name.split("/")
    if (not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts)
            or "\0" in name or any(ch in name for ch in LINE_BREAKS)):
        raise WsgishipError(f"{what}: NAME must be a path inside shared/ (no .., no absolute "
                            f"path, no empty part)")
    if parts[0] in RESERVED:
        raise WsgishipError(f"{what}: shared/{parts[0]} is wsgiship's (the app's "
                            f"{'log' if parts[0] == 'log' else 'sockets'}); pick another name")
    return name


def chars(length: int) -> str:
    return "empty" if length == 0 else f"{length} char" + ("" if length == 1 else "s")


def listing(shared: Sequence[tuple[str, int]], settings: Mapping[str, str],
            deployed: Mapping[str, int] | None) -> list[str]:
    """The lines of `fab env`: every variable as KEY=**** with its length and where it comes
    from: the shared .env (wins: wsgi.py loads it first), hosts.yaml's env (what the next
    deploy ships; compared with the live release's, `deployed`, by name and length)."""
    rows: list[tuple[str, int, str]] = []
    in_shared = {k for k, _ in shared}
    for key, length in sorted(shared):
        rows.append((key, length, "shared/.env"))
    for key in sorted(settings):
        notes = []
        if key in in_shared:
            notes.append("shared/.env's value wins")
        if deployed is not None and key not in deployed:
            notes.append("not deployed yet")
        elif deployed is not None and deployed[key] != len(settings[key]):
            notes.append("changed since the last deploy")
        rows.append((key, len(settings[key]), "hosts.yaml env" + "".join(f"; {n}" for n in notes)))
    for key in sorted(set(deployed or {}) - set(settings)):
        rows.append((key, (deployed or {})[key],
                     "hosts.yaml env when deployed; gone from it: the next deploy drops it"))
    width = max((len(k) for k, _, _ in rows), default=0) + 5
    hint = max((len(chars(n)) for _, n, _ in rows), default=0)
    return [f"{(k + '=****').ljust(width)}  {chars(n).ljust(hint)}  {src}" for k, n, src in rows]
