"""wsgiship.commands.migrations.listing run on release trees in tmp_path, and the rollback's
migration check (Rollback.check_migrations) on them through a local stand-in for Remote: it
warns, or notes that it could not look, and never stops the rollback."""

from __future__ import annotations

import io
from pathlib import Path

from fakes import HOSTILE_TOUCH, PWNED, LocalRemote, add_release, paths, rel

from wsgiship import migrations, output
from wsgiship.commands.migrations import listing
from wsgiship.ops.rollback import Rollback
from wsgiship.ops.session import Session
from wsgiship.remote import Result


def put(release: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (release / name).parent.mkdir(parents=True, exist_ok=True)
        (release / name).write_text(text)


def test_the_listing_finds_migrations_at_any_depth_but_not_in_links_or_the_site(
        deploy: Path, sh) -> None:
    r = add_release(deploy, rel(1))
    put(r, {"manage.py": "", "src/shop/migrations/0001_initial.py": "",
            "src/shop/migrations/__init__.py": "", "migrations/env.py": "",
            "migrations/alembic.ini": "",
            "migrations/versions/a1_init.py": '"""init"""\nrevision = "a1"\ndown_revision = None\n'
                                              "branch_labels = None\n",
            "notes.txt": "", "src/shop/views.py": "",
            # the installed copy of the app (install: project) and other packages: not searched
            ".wsgiship/site/shop/migrations/0001_initial.py": "",
            "vendor/lib/site-packages/django/contrib/auth/migrations/0001_initial.py": ""})
    # .venv (and shared dirs) are links: never followed
    (deploy / "venvs" / "base" / "django" / "migrations").mkdir(parents=True)
    (deploy / "venvs" / "base" / "django" / "migrations" / "0001_x.py").write_text("")
    res = sh(listing(paths(deploy), [rel(1), rel(2)]))  # rel(2) is not there: nothing
    assert res.returncode == 0, res.stderr
    n = rel(1)
    assert sorted(res.stdout.splitlines()) == sorted([
        f"file\t{n}\tmanage.py", f"file\t{n}\tsrc/shop/migrations/0001_initial.py",
        f"file\t{n}\tsrc/shop/migrations/__init__.py", f"file\t{n}\tmigrations/env.py",
        f"file\t{n}\tmigrations/alembic.ini", f"file\t{n}\tmigrations/versions/a1_init.py",
        f'rev\t{n}\tmigrations/versions/a1_init.py\trevision = "a1"',
        f"rev\t{n}\tmigrations/versions/a1_init.py\tdown_revision = None",
    ])
    parsed = migrations.parse(res.stdout)[n]
    assert parsed.revisions == {"migrations/versions/a1_init.py": ("a1", ())}


def test_a_release_name_is_one_shell_word(deploy: Path, sh) -> None:
    PWNED.unlink(missing_ok=True)
    assert sh(listing(paths(deploy), [HOSTILE_TOUCH])).returncode == 0
    assert not PWNED.exists()


def rollback_on(deploy: Path, make_app, remote: LocalRemote) -> tuple[Rollback, Session, io.BytesIO]:
    app = make_app(deploy_to=str(deploy))
    out = output.Reporter("web1", output.Printer(buf := io.BytesIO(), io.BytesIO()), live=False)
    rb = Rollback(remote, app, out)  # type: ignore[arg-type]
    remote.label = "web1"  # type: ignore[attr-defined]
    return rb, Session(remote=remote, app=app, out=out, action="rollback"), buf  # type: ignore[arg-type]


def test_the_rollback_warns_about_the_migrations_its_target_lacks(deploy: Path, make_app) -> None:
    old, new = add_release(deploy, rel(1)), add_release(deploy, rel(2))
    put(old, {"shop/migrations/0001_initial.py": ""})
    put(new, {"shop/migrations/0001_initial.py": "", "shop/migrations/0002_add_price.py": ""})
    rb, s, buf = rollback_on(deploy, make_app, LocalRemote())
    rb.check_migrations(s, rel(2), rel(1))
    lines = buf.getvalue().decode().splitlines()
    assert lines[0].startswith(f"[web1] warning: {rel(1)} lacks migrations that {rel(2)} has")
    assert lines[1] == ("[web1]   shop: 0002_add_price: fab exec -H web1 -- python manage.py "
                        "migrate shop 0001_initial")
    assert lines[2].startswith("[web1] rolling back anyway")
    # the other way round (a rollback to a newer release) there is nothing to undo
    buf.truncate(0)
    buf.seek(0)
    rb.check_migrations(s, rel(1), rel(2))
    assert buf.getvalue() == b""


def test_a_check_that_cannot_run_says_so_and_goes_on(deploy: Path, make_app) -> None:
    remote = LocalRemote(result=Result(2, "", "find: broken"))
    rb, s, buf = rollback_on(deploy, make_app, remote)
    rb.check_migrations(s, rel(2), rel(1))
    assert buf.getvalue().decode() == ("[web1] note: could not compare the releases' migrations "
                                       "(exit 2); rolling back\n")
    # nothing deployed before: nothing to compare, nothing run
    rb.check_migrations(s, "", rel(1))
    assert remote.events == ["run list the releases' migrations"]
