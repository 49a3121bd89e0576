"""Pure builders for the app's shared files: list the variables of its env files (names and
lengths, never values), edit the shared .env, put a file into shared/.

Values and file contents come on the script's stdin (remote.run_fed), never on a command line,
and are written by the app's user ($AS_APP), in place, mode 600: the file stays the app's (as
`fab setup` made it) and the deploy user acts as the app, as it may anyway; root only ever
creates an empty file right in shared/ for the app (as `fab setup` does for shared_files), and
only for a login that may act as root. A symbolic link on the way below shared/ is refused.
"""

from __future__ import annotations

from ..envfile import PARSE_LINE
from ..layout import Paths
from ..privilege import as_app, root
from ..shell import script
from .services import not_a_link

NO_FILE = 60        # not there, and the app's user may not create it there
REFUSED = 61        # a link, not a regular file, not the app's to write, an upload cut short
CANNOT_CREATE = 62  # root may not create it for the app (a restricted deploy user)

# Run by the server's python as the app's user: `list SHARED NAME CURRENT`, `edit SHARED NAME`
# (stdin: JSON {"set": [[KEY, LINE]...], "unset": [KEY...]}), `put SHARED NAME SIZE` (stdin: the
# content). Output: JSON lines of names, lengths and outcomes; never a value.
_PROGRAM = r'''
import json, os, pwd, stat, sys

class Stop(Exception):
    def __init__(self, code, text=""):
        Exception.__init__(self, text)
        self.code, self.text = code, text

def emit(**event):
    print(json.dumps(event, sort_keys=True))

def walk(shared, name):
    """The path of shared/NAME and its lstat (None: not there); a symbolic link on the way, or
    at the end, is refused."""
    try:
        if stat.S_ISLNK(os.lstat(shared).st_mode):
            raise Stop(REFUSED, "refusing: shared/ is a symbolic link on the server")
    except FileNotFoundError:
        raise Stop(REFUSED, "no shared/ on the server yet: run fab setup (or deploy) first")
    path, parts, st = shared, name.split("/"), None
    for i, part in enumerate(parts):
        path, shown, last = path + "/" + part, "shared/" + "/".join(parts[:i + 1]), i == len(parts) - 1
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if last:
                return path, None
            raise Stop(REFUSED, shown + ": no such directory on the server")
        except PermissionError:
            raise Stop(REFUSED, shown + ": the app's user cannot reach it")
        if stat.S_ISLNK(st.st_mode):
            raise Stop(REFUSED, "refusing: " + shown + " is a symbolic link on the server")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise Stop(REFUSED, shown + " is not a directory")
        if last and not stat.S_ISREG(st.st_mode):
            raise Stop(REFUSED, shown + " is not a regular file")
    return path, st

def opened(shared, name):
    """shared/NAME open for reading and writing by the app's user (created 600 if it may)."""
    path, st = walk(shared, name)
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    try:
        if st is None:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
        return os.open(path, flags), False
    except PermissionError:
        if st is None:
            raise Stop(NO_FILE)
        owner = pwd.getpwuid(st.st_uid).pw_name if st.st_uid >= 0 else "?"
        raise Stop(REFUSED, "shared/%s is not writable by the app's user %s (owner %s, mode %o;"
                   " fab setup gives the shared_files to that user)"
                   % (name, pwd.getpwuid(os.getuid()).pw_name, owner, stat.S_IMODE(st.st_mode)))

def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)

def write_all(fd, new, old):
    """In place (the file keeps its owner and the links to it): written, cut to its length."""
    if new != old:
        os.lseek(fd, 0, 0)
        view = memoryview(new)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(new))
        os.fsync(fd)
    if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
        os.fchmod(fd, 0o600)

def show(label, path, shared=None):
    try:
        if shared is not None:
            path, st = walk(shared, path)
            if st is None:
                raise FileNotFoundError
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except Stop as stop:
        return emit(file=label, state="refused", why=stop.text)
    except FileNotFoundError:
        return emit(file=label, state="missing")
    except PermissionError:
        return emit(file=label, state="unreadable")
    emit(file=label, state="present")
    seen = set()
    for line in text.splitlines():
        key, value = parse_env_line(line)
        if key is not None and key not in seen:  # the first one counts, as for the loader
            seen.add(key)
            emit(entry=label, key=key, length=len(value))

def do_list(shared, name, current):
    show("shared", name, shared)
    show("deployed", current + "/.wsgiship/env")
    linked = os.path.realpath(current + "/" + name) == os.path.realpath(shared + "/" + name)
    emit(linked=linked and os.path.isdir(current))

def do_edit(shared, name):
    fd, created = opened(shared, name)
    change = json.loads(sys.stdin.read())
    old = read_all(fd)
    lines = old.decode("utf-8", "surrogateescape").splitlines()
    before = {}
    for line in lines:
        key, value = parse_env_line(line)
        if key is not None:
            before.setdefault(key, value)
    sets, unset = dict(change["set"]), set(change["unset"])
    out, placed = [], set()
    for line in lines:
        key = parse_env_line(line)[0]
        if key in unset or key in placed:
            continue
        if key in sets:
            placed.add(key)
            line = sets[key]
        out.append(line)
    out += [line for key, line in change["set"] if key not in placed]
    for key, line in change["set"]:
        new = parse_env_line(line)[1]
        emit(set=key, was="new" if key not in before else "same" if before[key] == new else "changed")
    for key in change["unset"]:
        emit(unset=key, was="removed" if key in before else "absent")
    text = "\n".join(out) + ("\n" if out else "")
    write_all(fd, text.encode("utf-8", "surrogateescape"), old)
    emit(created=created)

def do_put(shared, name, size):
    fd, created = opened(shared, name)
    data = sys.stdin.buffer.read()
    if len(data) != int(size):
        raise Stop(REFUSED, "the upload was cut short (%d of %s bytes): shared/%s unchanged"
                   % (len(data), size, name))
    write_all(fd, data, None)
    emit(bytes=len(data), created=created)

try:
    {"list": do_list, "edit": do_edit, "put": do_put}[sys.argv[1]](*sys.argv[2:])
except Stop as stop:
    if stop.text:
        sys.stderr.write(stop.text + "\n")
    sys.exit(stop.code)
'''
PROGRAM = f"NO_FILE, REFUSED = {NO_FILE}, {REFUSED}\n" + PARSE_LINE + _PROGRAM


def _program(python: str, *args: object) -> str:
    return as_app(python, "-I", "-c", PROGRAM, *args)


def list_env(p: Paths, python: str, name: str) -> str:
    """JSON lines: the variables (name, length) of shared/NAME and of the live release's
    .wsgiship/env, and whether the live release's NAME is the shared one. Run with app_user."""
    return script(["cd /", _program(python, "list", p.shared, name, p.current)])


def _written(p: Paths, name: str, app_user: str, run: str) -> str:
    """Run `run` (the program, writing shared/NAME); when the file is not there and the app's
    user may not create it (right in shared/, the login user's), root creates it empty for the
    app, as fab setup does, and the program runs again (its stdin is still unread)."""
    lines = ["cd /", f"rc=0; {run} || rc=$?"]
    if "/" not in name:
        create = root("install", "-m", "600", "-o", app_user, "-g", "www-data", "/dev/null",
                      f"{p.shared}/{name}", granted=False)
        lines.append(f"if [ $rc = {NO_FILE} ]; then {not_a_link(p.shared)};"
                     f" {create} || exit {CANNOT_CREATE}; rc=0; {run} || rc=$?; fi")
    lines.append("exit $rc")
    return script(lines)


def edit_env(p: Paths, python: str, name: str, app_user: str) -> str:
    """Set and unset variables in shared/NAME (stdin: the change as JSON). Privileged (it may
    create the file), run with app_user."""
    return _written(p, name, app_user, _program(python, "edit", p.shared, name))


def put_file(p: Paths, python: str, name: str, app_user: str, size: int) -> str:
    """Write stdin (exactly `size` bytes) into shared/NAME. Privileged, run with app_user."""
    return _written(p, name, app_user, _program(python, "put", p.shared, name, int(size)))


def stage_env(python: str) -> str:
    """A file of the app's user (mode 600, in its temporary dir) holding stdin: `fab exec
    --env`'s variables, read and removed by the command as it starts. Prints file=PATH."""
    keep = ("import os, sys, tempfile; fd, path = tempfile.mkstemp(prefix='wsgiship-env.');"
            " f = os.fdopen(fd, 'wb'); f.write(sys.stdin.buffer.read()); f.close();"
            " print('file=' + path)")
    return script(["cd /", as_app(python, "-I", "-c", keep)])
