"""wsgiship.migrations: reading the listing, comparing the live release's migrations with the
rollback target's (Django per app, Alembic / Flask-Migrate per script dir), and the warning."""

from __future__ import annotations

import pytest

from wsgiship import migrations
from wsgiship.migrations import Gap, Listing, compare, parse, warning

CUR, TGT = "20250101T000002Z-0000002", "20250101T000001Z-0000001"


def listing(*files: str, revisions: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> Listing:
    return Listing(set(files), dict(revisions or {}))


def test_parse_reads_files_and_revision_lines_per_release() -> None:
    text = "\n".join([
        f"file\t{CUR}\tshop/migrations/0001_initial.py",
        f"file\t{CUR}\tmigrations/versions/b2_add.py",
        f"rev\t{CUR}\tmigrations/versions/b2_add.py\trevision = 'b2'",
        f"rev\t{CUR}\tmigrations/versions/b2_add.py\tdown_revision: Union[str, None] = \"a1\"",
        f"file\t{TGT}\tmigrations/versions/m3_merge.py",
        f"rev\t{TGT}\tmigrations/versions/m3_merge.py\trevision: str = 'm3'",
        f"rev\t{TGT}\tmigrations/versions/m3_merge.py\tdown_revision = ('a1', 'b2')",
        f"rev\t{TGT}\tmigrations/versions/m3_merge.py\trevision_note = 'x'",  # another name
        f"rev\t{TGT}\tmigrations/versions/z.py\tdown_revision = None",
        "garbage without tabs", "",
    ])
    out = parse(text)
    assert out[CUR].files == {"shop/migrations/0001_initial.py", "migrations/versions/b2_add.py"}
    assert out[CUR].revisions == {"migrations/versions/b2_add.py": ("b2", ("a1",))}
    assert out[TGT].revisions == {"migrations/versions/m3_merge.py": ("m3", ("a1", "b2")),
                                  "migrations/versions/z.py": ("", ())}


def test_django_names_the_first_missing_per_app_and_the_targets_newest() -> None:
    cur = listing("manage.py", "shop/migrations/__init__.py", "shop/migrations/0001_initial.py",
                  "shop/migrations/0002_add_price.py", "shop/migrations/0003_index.py",
                  "blog/migrations/0001_initial.py", "users/migrations/0001_initial.py",
                  "shop/migrations/helpers.py")
    tgt = listing("manage.py", "shop/migrations/0001_initial.py",
                  "users/migrations/0001_initial.py")
    assert compare(cur, tgt) == [
        # blog is new in the current release: all the way down
        Gap("blog", ("0001_initial.py",), ("python", "manage.py", "migrate", "blog", "zero")),
        Gap("shop", ("0002_add_price.py", "0003_index.py"),
            ("python", "manage.py", "migrate", "shop", "0001_initial")),
    ]


def test_django_migrations_anywhere_and_numbers_in_order() -> None:
    cur = listing("src/manage.py", "src/deep/er/shop/migrations/0009_a.py",
                  "src/deep/er/shop/migrations/0010_b.py", "tools/x/manage.py")
    tgt = listing("src/deep/er/shop/migrations/0009_a.py")
    [gap] = compare(cur, tgt)
    assert gap == Gap("shop", ("0010_b.py",), ("python", "src/manage.py", "migrate", "shop",
                                               "0009_a"))
    assert compare(tgt, cur) == []  # the target has more: nothing to undo


def test_alembic_goes_down_to_the_targets_head() -> None:
    revs = {"alembic/versions/a1_init.py": ("a1", ()), "alembic/versions/b2_add.py": ("b2", ("a1",)),
            "alembic/versions/c3_more.py": ("c3", ("b2",))}
    cur = listing("alembic.ini", "alembic/env.py", *revs, revisions=revs)
    tgt_files = ("alembic/versions/a1_init.py", "alembic/versions/b2_add.py")
    tgt = listing("alembic.ini", "alembic/env.py", *tgt_files,
                  revisions={f: revs[f] for f in tgt_files})
    assert compare(cur, tgt) == [Gap("alembic", ("c3_more.py",), ("alembic", "downgrade", "b2"))]


def test_flask_migrate_uses_flask_db_and_base_when_the_target_has_none() -> None:
    cur = listing("migrations/env.py", "migrations/alembic.ini", "migrations/versions/a1_init.py",
                  "migrations/versions/__init__.py",
                  revisions={"migrations/versions/a1_init.py": ("a1", ())})
    tgt = listing("migrations/env.py", "migrations/alembic.ini")
    assert compare(cur, tgt) == [Gap("migrations", ("a1_init.py",),
                                     ("flask", "db", "downgrade", "base"))]
    # a script dir of another name is named to flask db
    moved = listing(*(f.replace("migrations/", "db/") for f in cur.files),
                    revisions={"db/versions/a1_init.py": ("a1", ())})
    [gap] = compare(moved, listing("db/env.py", "db/alembic.ini"))
    assert gap.command == ("flask", "db", "downgrade", "--directory", "db", "base")


@pytest.mark.parametrize("target_revisions", [
    {"v/versions/a.py": ("", ()), "v/versions/b.py": ("b", ("a",))},        # unreadable
    {"v/versions/a.py": ("a", ()), "v/versions/b.py": ("b", ())},           # two heads
])
def test_alembic_without_one_known_head_names_the_files(target_revisions) -> None:
    cur = listing("v/env.py", "v/versions/a.py", "v/versions/b.py", "v/versions/c.py")
    tgt = listing("v/env.py", *target_revisions, revisions=target_revisions)
    [gap] = compare(cur, tgt)
    assert gap == Gap("v", ("c.py",), ())
    [_, line, _] = warning([gap], "web1", CUR, TGT)
    assert line == (f"  v: c: fab exec -H web1 -- alembic downgrade <the revision {TGT} has> "
                    f"(missing: c.py)")


def test_versions_without_an_env_py_and_migrations_unnumbered_are_not_migrations() -> None:
    cur = listing("api/versions/v2.py", "docs/migrations/README.py", "x/migrations/notes.py")
    assert compare(cur, listing()) == []


def test_the_warning_names_each_gap_its_command_and_how_to_go_first() -> None:
    gaps = [Gap("shop", ("0002_add_price.py", "0003_x.py"),
                ("python", "manage.py", "migrate", "shop", "0001_initial")),
            Gap("migrations", ("b2_add.py",), ("flask", "db", "downgrade", "a1"))]
    assert warning(gaps, "web1", CUR, TGT) == [
        f"warning: {TGT} lacks migrations that {CUR} has; to undo them, migrate down FIRST, "
        f"while {CUR} is live:",
        "  shop: 0002_add_price (and 1 more): fab exec -H web1 -- python manage.py migrate shop "
        "0001_initial",
        "  migrations: b2_add: fab exec -H web1 -- flask db downgrade a1",
        "rolling back anyway: most migrations only add, and older code keeps working with them. "
        f"To migrate down first instead: fab rollback -H web1 --to {CUR}, the commands above, "
        f"then fab rollback -H web1 --to {TGT}",
    ]
    assert warning([], "web1", CUR, TGT) == []


def test_a_command_word_is_quoted_for_the_shell() -> None:
    gap = Gap("my app", ("0002_x.py",), ("python", "manage.py", "migrate", "my app", "zero"))
    assert "migrate 'my app' zero" in warning([gap], "web1", CUR, TGT)[1]


def test_the_module_names_its_kinds() -> None:
    assert migrations.DJANGO_FILE.match("0001_initial.py")
    assert not migrations.DJANGO_FILE.match("__init__.py")
