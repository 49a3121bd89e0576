"""Pure builder for the rollback's migration check: list the migration files of releases
(wsgiship/migrations.py compares them)."""

from __future__ import annotations

from collections.abc import Sequence

from ..layout import CONFIG_DIR, Paths
from ..shell import q, script

# never searched: the installed copy of the app (install: project), VCS data, other packages
PRUNED = (CONFIG_DIR, ".git", "node_modules", "site-packages", "__pycache__")


def listing(p: Paths, releases: Sequence[str]) -> str:
    """For each release: `file<TAB>release<TAB>path` for every Django migration candidate
    (`*/migrations/*.py`), Alembic candidate (`*/versions/*.py`), `env.py`, `alembic.ini` and
    `manage.py` under it, at any depth (links, such as .venv and the shared dirs, are not
    followed); and `rev<TAB>release<TAB>path<TAB>line` for the `revision`/`down_revision`
    lines of the `versions` files. A release that is not there lists nothing."""
    prune = " -o ".join(f"-name {q(name)}" for name in PRUNED)
    lines = []
    for release in releases:
        lines += [
            f"N={q(release)}",
            f"if cd {q(p.release(release))} 2>/dev/null; then",
            f"  find . \\( {prune} \\) -prune -o -type f \\( -path '*/migrations/*.py'"
            " -o -path '*/versions/*.py' -o -name env.py -o -name alembic.ini -o -name manage.py"
            " \\) -print | while IFS= read -r f; do",
            '    f=${f#./}; printf "file\\t%s\\t%s\\n" "$N" "$f"',
            '    case "$f" in */versions/*.py|versions/*.py)',
            "      grep -E '^(down_)?revision' \"$f\" 2>/dev/null | head -n 4 | while IFS= read -r l;"
            ' do printf "rev\\t%s\\t%s\\t%s\\n" "$N" "$f" "$l"; done || true ;;',
            "    esac",
            # an unreadable dir or a file without those lines lists less, never fails
            "  done || true",
            "fi",
        ]
    return script(lines)
