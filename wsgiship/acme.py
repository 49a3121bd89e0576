"""certbot's output, read back: the one line `fab setup` says when it could not get a certificate.

What the ACME server reported per domain comes in certbot's `Domain:` / `Type:` / `Detail:`
lines; an ACME server that cannot be reached shows as an unexpected error naming the
connection's failure (requests' or urllib3's exception, or certbot's own `Requesting ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONNECTION = ("requests.exceptions.", "urllib3.exceptions.", "Max retries exceeded",
               "Failed to establish a new connection", "Connection refused", "Connection reset",
               "Name or service not known", "Temporary failure in name resolution",
               "No address associated", "Network is unreachable", "timed out", "SSLError",
               "CERTIFICATE_VERIFY_FAILED", "Failed to resolve")
# the part of a connection error a person needs, most specific first
_REASONS = (
    r"\[SSL: [A-Z_]+\] ([^'\"()]+?)(?: \(_ssl\.c:\d+\))?['\")]",
    r"Failed to resolve '([^']+)'",
    r"\[Errno -?\d+\] ([^'\")]+)",
    r"(Read timed out|Connect(?:ion)? timed out|timed out)",
    r"^ValueError: Requesting [^:]*: (.+)$",
)
_NOISE = ("Saving debug log", "Ask for help", "- - - -", "An unexpected error occurred")


@dataclass(frozen=True)
class Problem:
    """One domain the ACME server could not verify: its error type and detail."""

    domain: str
    type: str
    detail: str


def problems(output: str) -> list[Problem]:
    """The domains certbot lists as failed, with what the ACME server said of each."""
    found: list[Problem] = []
    domain = kind = ""
    for line in output.splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "Domain":
            domain, kind = value, ""
        elif key == "Type" and domain:
            kind = value
        elif key == "Detail" and domain:
            found.append(Problem(domain, kind, value))
            domain = kind = ""
    return found


def _unexpected(output: str) -> str:
    """The line after certbot's `An unexpected error occurred:` ("" if none)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "An unexpected error occurred:" and i + 1 < len(lines):
            return lines[i + 1].strip()
    return ""


def connection_reason(text: str) -> str:
    """What failed, in a few words, from a connection error's text (the text itself when it
    names nothing known)."""
    for pattern in _REASONS:
        match = re.search(pattern, text, re.M)
        if match:
            reason = match.group(1).strip()
            return f"cannot resolve {reason}" if pattern.startswith("Failed to resolve") else reason
    return text[:300]


def _last_words(output: str) -> str:
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and not line.strip().startswith(_NOISE)]
    return lines[-1][:300] if lines else "no output"


def failure(output: str, names: tuple[str, ...], server: str) -> str:
    """The one line for a failed certbot: the domains the ACME server could not verify, what it
    said of each and the fix; or that the server could not be reached; or certbot's last
    words."""
    found = problems(output)
    if found:
        said = ", ".join(f"{p.domain} ({p.type + ': ' if p.type else ''}{p.detail})"
                         for p in found)
        failed = [p.domain for p in dict((p.domain, p) for p in found).values()]
        which = (failed[0] + " resolves" if len(failed) == 1
                 else ", ".join(failed[:-1]) + " and " + failed[-1] + " resolve")
        return (f"tls: the ACME server {server} could not verify {said};"
                f" check that {which} to this server and its port 80 (http_port) is reachable from"
                f" the internet")
    error = _unexpected(output)
    if error and any(word in error for word in _CONNECTION):
        return f"tls: cannot reach the ACME server {server}: {connection_reason(error)}"
    said = error or _last_words(output)
    return (f"tls: certbot could not get a certificate for {', '.join(names)} from {server}:"
            f" {said} (its log: /var/log/letsencrypt/letsencrypt.log on the server)")
