"""The rollback's migration check on the real test host: rolling back from a release with a
Django migration (and a Flask-Migrate revision) its target lacks warns with the migration and
the command to migrate down first, and rolls back all the same."""

from __future__ import annotations

MIGRATION = "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    pass\n"


def test_a_rollback_names_the_migrations_its_target_lacks_and_goes_on(project) -> None:
    p = project()
    files = {
        "manage.py": "",
        "shop/__init__.py": "",
        "shop/migrations/__init__.py": "",
        "shop/migrations/0001_initial.py": MIGRATION,
        "migrations/env.py": "",
        "migrations/alembic.ini": "",
        "migrations/versions/a1b2_init.py": 'revision = "a1b2"\ndown_revision = None\n',
    }
    for name, text in files.items():
        (p.app_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (p.app_dir / name).write_text(text)
    p.set_text("first")
    p.must(p.deploy())
    first = p.current()

    (p.app_dir / "shop/migrations/0002_add_price.py").write_text(MIGRATION)
    (p.app_dir / "migrations/versions/c3d4_price.py").write_text(
        'revision: str = "c3d4"\ndown_revision: str | None = "a1b2"\n')
    p.set_text("second")
    p.must(p.deploy())
    second = p.current()
    assert p.get("/")[:2] == (200, "second")

    res = p.fab("rollback", "-H", "t")
    out = p.must(res)
    assert f"[t] warning: {first} lacks migrations that {second} has; to undo them, migrate " \
           f"down FIRST, while {second} is live:" in out, out
    assert "[t]   shop: 0002_add_price: fab exec -H t -- python manage.py migrate shop " \
           "0001_initial" in out, out
    assert "[t]   migrations: c3d4_price: fab exec -H t -- flask db downgrade a1b2" in out, out
    assert "[t] rolling back anyway: most migrations only add" in out, out
    # ... and it did
    assert p.current() == first
    assert p.get("/")[:2] == (200, "first")
    assert not p.lock_exists()

    # back to the newer release: nothing to undo, nothing said
    out = p.must(p.fab("rollback", "-H", "t", "--to", second))
    assert "migrat" not in out, out
    assert p.get("/")[:2] == (200, "second")
