"""The rollback's migration check: which migrations the live release has and its rollback
target lacks (commands/migrations.py lists them on the server), and what to run to migrate
down first. It only warns: most migrations add, the older code keeps working with them, and an
emergency rollback is never held up.

- Django: `<app>/migrations/[0-9]*.py` at any depth (per app: the first one missing, and
  `python manage.py migrate <app> <the newest the target has, or zero>`);
- Alembic / Flask-Migrate: `<dir>/versions/*.py` beside a `<dir>/env.py` (the target's head
  revision from the files' `revision` / `down_revision` lines: `alembic downgrade <rev>`, or
  `flask db downgrade <rev>` when `<dir>` holds its own alembic.ini, as Flask-Migrate's does).
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

DJANGO_FILE = re.compile(r"^[0-9][^/]*\.py$")
REVISION_LINE = re.compile(r"^(down_)?revision\b[^=]*=(.*)$")
QUOTED = re.compile(r"""["']([^"']+)["']""")


@dataclass
class Listing:
    """The migration-related files of one release."""

    files: set[str] = field(default_factory=set)
    # a versions file -> (its revision, the revisions it comes down from)
    revisions: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gap:
    """Migrations of one app (Django) or one Alembic dir the target lacks."""

    where: str                   # the Django app label, or the Alembic script dir
    missing: tuple[str, ...]     # file names, oldest first
    command: tuple[str, ...]     # argv to migrate down with, for `fab exec` ( () if unknown)


def parse(text: str) -> dict[str, Listing]:
    """The listing script's output, per release."""
    out: dict[str, Listing] = defaultdict(Listing)
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        release, _, rest = rest.partition("\t")
        if kind == "file" and rest:
            out[release].files.add(rest)
        elif kind == "rev" and "\t" in rest:
            path, _, source = rest.partition("\t")
            match = REVISION_LINE.match(source.strip())
            if match:
                rev, downs = out[release].revisions.get(path, ("", ()))
                ids = tuple(QUOTED.findall(match[2]))
                if match[1]:
                    downs = ids
                elif ids:
                    rev = ids[0]
                out[release].revisions[path] = (rev, downs)
    return dict(out)


def _order(name: str) -> tuple[int, str]:
    digits = re.match(r"\d+", name)
    return (int(digits[0]) if digits else 0, name)


def _django(listing: Listing) -> dict[str, list[str]]:
    """migrations dir -> its numbered migration file names."""
    dirs: dict[str, list[str]] = defaultdict(list)
    for path in listing.files:
        pp = PurePosixPath(path)
        if pp.parent.name == "migrations" and DJANGO_FILE.match(pp.name):
            dirs[str(pp.parent)].append(pp.name)
    return {d: sorted(names, key=_order) for d, names in dirs.items()}


def _alembic(listing: Listing) -> dict[str, list[str]]:
    """Alembic script dir (the one with env.py) -> its versions file names."""
    dirs: dict[str, list[str]] = defaultdict(list)
    for path in listing.files:
        pp = PurePosixPath(path)
        script_dir = pp.parent.parent
        if (pp.parent.name == "versions" and pp.name != "__init__.py"
                and str(script_dir / "env.py") in listing.files):
            dirs[str(script_dir)].append(pp.name)
    return {d: sorted(names) for d, names in dirs.items()}


def _manage(listing: Listing) -> str:
    """The shallowest manage.py (manage.py when there is none)."""
    found = [f for f in listing.files if PurePosixPath(f).name == "manage.py"]
    return min(found, key=lambda f: (f.count("/"), f)) if found else "manage.py"


def _alembic_command(target: Listing, script_dir: str, names: list[str]) -> tuple[str, ...]:
    """Down to the target's head revision (`base` when it has none of these files); () when
    the files do not say which one it is."""
    if names:
        revs = [target.revisions.get(f"{script_dir}/versions/{n}", ("", ()))
                for n in names]
        if any(not rev for rev, _ in revs):
            return ()
        heads = {rev for rev, _ in revs} - {d for _, downs in revs for d in downs}
        if len(heads) != 1:
            return ()
        to = heads.pop()
    else:
        to = "base"
    if f"{script_dir}/alembic.ini" in target.files:  # Flask-Migrate keeps its own
        directory = () if script_dir == "migrations" else ("--directory", script_dir)
        return ("flask", "db", "downgrade", *directory, to)
    return ("alembic", "downgrade", to)


def compare(current: Listing, target: Listing) -> list[Gap]:
    """The migrations `current` has and `target` lacks, per Django app and Alembic dir."""
    gaps = []
    target_django = _django(target)
    for directory, names in sorted(_django(current).items()):
        have = target_django.get(directory, [])
        missing = tuple(n for n in names if n not in have)
        if missing:
            label = PurePosixPath(directory).parent.name or directory
            to = have[-1].removesuffix(".py") if have else "zero"
            gaps.append(Gap(label, missing,
                            ("python", _manage(current), "migrate", label, to)))
    target_alembic = _alembic(target)
    for directory, names in sorted(_alembic(current).items()):
        have = target_alembic.get(directory, [])
        missing = tuple(n for n in names if n not in have)
        if missing:
            gaps.append(Gap(directory, missing, _alembic_command(target, directory, have)))
    return gaps


def warning(gaps: list[Gap], host: str, current: str, target: str) -> list[str]:
    """The warning's lines (without the host prefix); none when nothing is missing."""
    if not gaps:
        return []
    lines = [f"warning: {target} lacks migrations that {current} has; to undo them, migrate "
             f"down FIRST, while {current} is live:"]
    for gap in gaps:
        more = f" (and {len(gap.missing) - 1} more)" if len(gap.missing) > 1 else ""
        first = gap.missing[0].removesuffix(".py")
        if gap.command:
            todo = f"fab exec -H {host} -- {shlex.join(gap.command)}"
        else:
            todo = (f"fab exec -H {host} -- alembic downgrade <the revision {target} has> "
                    f"(missing: {', '.join(gap.missing)})")
        lines.append(f"  {gap.where}: {first}{more}: {todo}")
    above = "the commands above" if len(gaps) > 1 else "the command above"
    lines.append(f"rolling back anyway: most migrations only add, and older code keeps working "
                 f"with them. To migrate down first instead: fab rollback -H {host} --to "
                 f"{current}, {above}, then fab rollback -H {host} --to {target}")
    return lines
