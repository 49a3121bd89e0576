"""Root commands: built by one helper, so a script's `$SUDO` lines and the sudoers rules that
`fab setup` installs come from the same data.

A builder writes a root command as `root("systemctl", "reload", "nginx")`; in a script it reads
`$SUDO systemctl reload nginx` ($SUDO is `sudo -n` for a deploy user, empty for root). The
commands a restricted deploy user may run are `granted=True`; `fab setup` turns exactly those
into sudoers rules (`rule()`, with the full path sudo matches). The others (creating the layout,
handing dirs to the app user, installing a changed service config) need root itself, or a user
with full sudo, and `fab setup` does them for a restricted user.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .shell import Raw, cmd

# Where Debian and Ubuntu keep the commands the sudo rules name (sudo matches full paths).
FULL_PATHS = {
    "systemctl": "/usr/bin/systemctl",
    "nginx": "/usr/sbin/nginx",
    "ln": "/usr/bin/ln",
    "supervisorctl": "/usr/bin/supervisorctl",
}


@dataclass(frozen=True)
class RootCommand:
    """One command run as root: its argv, and whether the sudo rules grant it."""

    argv: tuple[str, ...]
    granted: bool = True

    def __str__(self) -> str:
        _record(self)
        return "$SUDO " + cmd(*self.argv)

    def rule(self) -> str:
        """The command as a sudoers rule names it: full path, then the exact arguments."""
        program, *args = self.argv
        if program not in FULL_PATHS:
            raise ValueError(f"no sudo rule for {program}: it is not a granted command")
        return " ".join([FULL_PATHS[program], *(_sudoers_escape(a) for a in args)])


def root(*argv: object, granted: bool = True) -> RootCommand:
    """A root command (see the module doc); put it in a script with f"{root(...)}"."""
    return RootCommand(tuple(a if isinstance(a, Raw) else str(a) for a in argv), granted)


def as_app(*argv: object) -> str:
    """A command run as the app's user (its fifo, its /proc entries, its hooks): `$AS_APP cmd`,
    where Remote.run(app_user=...) sets $AS_APP to `sudo -n -u APP --` (the deploy user may act
    as the app, never as root), `runuser -u APP --` as root, or nothing when the login is it."""
    return "$AS_APP " + cmd(*argv)


def _sudoers_escape(arg: str) -> str:
    for ch in "\\,:=":
        arg = arg.replace(ch, "\\" + ch)
    return arg


# --- what a script built: for tests that compare the scripts with the rules ---

_recorders: list[list[RootCommand]] = []


def _record(command: RootCommand) -> None:
    for seen in _recorders:
        seen.append(command)


@contextmanager
def recording() -> Iterator[list[RootCommand]]:
    """Collect every root command put into a script while the block runs."""
    seen: list[RootCommand] = []
    _recorders.append(seen)
    try:
        yield seen
    finally:
        _recorders.remove(seen)
