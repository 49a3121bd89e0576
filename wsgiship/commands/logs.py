"""Pure builders for reading the app's logs.

Each returns a bash script (text); nothing here touches SSH. A log script prints the log's lines
on stdout, untouched, and its remarks on stderr as ``@wsgiship:<note>`` lines (NOTES).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import WsgishipError
from ..layout import Paths
from ..shell import q, script

SOURCES = ("app", "nginx", "access")
DEFAULT_SOURCES = ("app", "nginx")
NOTE = "@wsgiship:"
NOTES = {
    "missing": "no log yet",
    "waiting": "no log yet; waiting for it",
    "notime": "its lines carry no timestamp: --since not applied",
    "empty": "the log is empty",
}
# Exit codes of the probe, for the errors the user can fix.
BAD_SINCE = 45
BAD_GREP = 46
MAX_LINES = 1_000_000


@dataclass(frozen=True)
class LogQuery:
    """What to show: which sources, how many lines, which lines, since when, and whether to follow."""

    sources: tuple[str, ...] = DEFAULT_SOURCES
    lines: int = 50
    grep: str = ""
    since: str = ""
    follow: bool = False


def parse_sources(text: str) -> tuple[str, ...]:
    """'app', 'nginx,access', 'all' -> the sources in a fixed order; '' -> app and nginx."""
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(DEFAULT_SOURCES)
    wanted = set()
    for name in names:
        if name == "all":
            wanted.update(SOURCES)
        elif name in SOURCES:
            wanted.add(name)
        else:
            raise WsgishipError(f"unknown log source {name!r}: use app, nginx, access or all "
                                f"(several: --source app,access)")
    return tuple(s for s in SOURCES if s in wanted)


def make_query(source: str = "", lines: int = 50, grep: str = "", since: str = "",
               follow: bool = False) -> LogQuery:
    """A checked LogQuery from the task's options."""
    if not 0 <= lines <= MAX_LINES:
        raise WsgishipError(f"--lines: expected a number from 0 to {MAX_LINES}, got {lines}")
    for option, value in (("--grep", grep), ("--since", since)):
        if "\n" in value or "\0" in value:
            raise WsgishipError(f"{option}: expected one line of text")
    return LogQuery(parse_sources(source), lines, grep, since.strip(), follow)


def log_files(p: Paths, sources: Sequence[str]) -> dict[str, str]:
    """Where each source's log is, as the templates write them: {source: path}."""
    files = {
        "app": p.app_log,
        "nginx": p.nginx_error_log,
        "access": p.nginx_access_log,
    }
    return {s: files[s] for s in sources}


def probe(files: dict[str, str], grep: str = "", since: str = "") -> str:
    """Check --grep and --since, say which logs need sudo to read (priv_<source>=0|1) and the
    --since time as seconds since the epoch, on the server's clock and time zone."""
    lines = []
    if since:
        lines.append(f"if ! t=$(LC_ALL=C date -d {q(since)} +%s 2>&1); then"
                     f" echo \"$t\" >&2; exit {BAD_SINCE}; fi")
        lines.append('echo "since=$t"')
    if grep:
        # grep exits 2 for a bad pattern, 1 for no match (here: always, its input is empty)
        lines.append(f"if ! err=$(LC_ALL=C.UTF-8 grep -E -e {q(grep)} </dev/null 2>&1)"
                     f' && [ -n "$err" ]; then echo "$err" >&2; exit {BAD_GREP}; fi')
    for source, path in files.items():
        # readable, or missing in a directory we could create it in: no sudo needed
        lines.append(
            f"F={q(path)}; if [ -r \"$F\" ] || {{ [ ! -e \"$F\" ] && [ -w \"$(dirname \"$F\")\" ]; }};"
            f" then echo priv_{source}=0; else echo priv_{source}=1; fi"
        )
    return script(lines)


# Filters a log by time (reads the file itself, up to a byte limit, so a follow can go on from
# there). Exit 3 when no line has a timestamp: then every line is printed; exit 4 when it has no
# line at all. A line without a timestamp (a traceback's) belongs to the entry above it.
SINCE_FILTER = r'''
import calendar, re, sys, time
path, since, limit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
MONTHS = {m.encode(): i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
# nginx error log 2026/11/25 12:00:39; Python logging / Flask [2026-11-25 12:00:39,635]
ISO = re.compile(rb"^\[?(\d{4})[-/](\d\d)[-/](\d\d)[ T](\d\d):(\d\d):(\d\d)")
# uWSGI log-date "Wed Nov 25 12:00:39 2026 - ", and its request lines "[pid: ...] ... [Wed Nov ...]"
CTIME = re.compile(rb"^(?:\[pid: [^\]]*\].*?\[)?[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) "
                   rb"(\d\d):(\d\d):(\d\d) (\d{4})")
# nginx access log: 127.0.0.1 - - [25/Nov/2026:12:00:39 +0000]
ACCESS = re.compile(rb"^\S+ \S+ \S+ \[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) "
                    rb"([+-])(\d\d)(\d\d)\]")

def stamp(line):
    try:
        m = ISO.match(line)
        if m:
            y, mo, d, hh, mm, ss = map(int, m.groups())
            return time.mktime((y, mo, d, hh, mm, ss, 0, 0, -1))
        m = CTIME.match(line)
        if m and m.group(1) in MONTHS:
            mon, d, hh, mm, ss, y = m.groups()
            return time.mktime((int(y), MONTHS[mon], int(d), int(hh), int(mm), int(ss), 0, 0, -1))
        m = ACCESS.match(line)
        if m and m.group(2) in MONTHS:
            d, mon, y, hh, mm, ss, sign, oh, om = m.groups()
            t = calendar.timegm((int(y), MONTHS[mon], int(d), int(hh), int(mm), int(ss)))
            off = (int(oh) * 60 + int(om)) * 60
            return t - off if sign == b"+" else t + off
    except (ValueError, OverflowError):
        return None
    return None

def lines():
    left = limit
    with open(path, "rb") as f:
        for line in f:
            if left >= 0:
                if left == 0:
                    return
                line = line[:left]
                left -= len(line)
            yield line

out = sys.stdout.buffer
if next(lines(), None) is None:
    sys.exit(4)
if not any(stamp(line) is not None for line in lines()):
    out.writelines(lines())
    sys.exit(3)
keep = False
for line in lines():
    t = stamp(line)
    if t is not None:
        keep = t >= since
    if keep:
        out.write(line)
'''


def _note(name: str) -> str:
    return f"echo {q(NOTE + name)} >&2"


def read(path: str, lines: int, grep: str = "", since: int | None = None) -> str:
    """The log's last `lines` lines (since a time, matching a pattern: in that order)."""
    return script([
        f"F={q(path)}",
        f'if [ ! -e "$F" ]; then {_note("missing")}; exit 0; fi',
        *_history(lines, grep, since, limit="-1"),
    ])


def follow(path: str, lines: int, grep: str = "", since: int | None = None) -> str:
    """As `read`, then every new line as it is written, until the client goes away.

    Closing the channel ends the script's stdin; the `cat` that reads it then ends, and
    `tail --pid` ends with it (within a second), so no tail is left behind on the server.
    """
    grep_new = f" | LC_ALL=C.UTF-8 grep -a --line-buffered -E -e {q(grep)}" if grep else ""
    body = [
        f"F={q(path)}",
        "exec 3<&0",
        "cat <&3 >/dev/null &",
        "W=$!",
        f'if [ ! -e "$F" ]; then {_note("waiting")}; fi',
    ]
    if not grep and since is None:
        # one tail from the last lines on: nothing lost or doubled in between
        body.append(f'tail -n {int(lines)} -F -s 0.5 --pid="$W" -- "$F" 2>/dev/null')
        return script(body)
    body += [
        'SIZE=$(stat -L -c %s -- "$F" 2>/dev/null || echo 0)',
        *(f'if [ "$SIZE" -gt 0 ]; then {line}; fi'
          for line in _history(lines, grep, since, limit='"$SIZE"')),
        # on from the byte the history ended at
        f'tail -c +"$((SIZE + 1))" -F -s 0.5 --pid="$W" -- "$F" 2>/dev/null{grep_new} || true',
    ]
    return script(body)


def _history(lines: int, grep: str, since: int | None, limit: str) -> list[str]:
    if lines <= 0:
        return []  # (and a `tail -n 0` would end the pipe under grep: a SIGPIPE, an error)
    grep_part = (f" | {{ LC_ALL=C.UTF-8 grep -a -E -e {q(grep)} || [ $? = 1 ]; }}"
                 if grep else "")
    tail = f" | tail -n {int(lines)}"
    if since is not None:
        return [
            f'python3 -c {q(SINCE_FILTER)} "$F" {int(since)} {limit}{grep_part}{tail}'
            f' || case "${{PIPESTATUS[0]}}" in 3) {_note("notime")};; 4) {_note("empty")};;'
            " *) false;; esac",
        ]
    if limit == "-1":
        if not grep:
            return [f'tail -n {int(lines)} -- "$F"']
        return [f'cat -- "$F"{grep_part}{tail}']
    return [f'head -c {limit} -- "$F"{grep_part}{tail}']
