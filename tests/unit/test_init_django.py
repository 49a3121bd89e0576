"""wsgiship init on Django projects: a fresh `django-admin startproject` layout and the
settings a project grows (STATIC_ROOT, a SQLite file in a data dir, split settings)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from init_apps import django_project, django_settings, edit, initialized, uncommented, write

from wsgiship import config

COLLECTSTATIC = "python manage.py collectstatic --noinput"
MIGRATE = "python manage.py migrate --noinput"


def test_a_fresh_startproject_deploys_as_it_is(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    report, text, data, inv = initialized(root)
    lines = report.lines(cwd=root)
    assert "wsgi: shop.wsgi:application (from manage.py: DJANGO_SETTINGS_MODULE=shop.settings)" \
        in lines
    app = inv.host("web1").app
    assert (app.name, app.wsgi, app.server_name) == ("shop", "shop.wsgi:application", "localhost")
    # the admin answers on a fresh project; / is a 404 there
    assert app.health.path == "/admin/login/"
    # nothing static to serve until STATIC_ROOT is set: the way to set it is printed and written
    assert app.static == {} and app.shared_dirs == ()
    assert any("STATIC_ROOT is not set in shop/settings.py: set STATIC_ROOT = BASE_DIR / "
               '"staticfiles"' in line for line in lines)
    assert '# static: {"/static/": "staticfiles"}' in text
    # the default SQLite file would sit in the release, read-only to the app: migrate is off
    assert "hooks" not in data["app"] and f"#     - {MIGRATE}" in text
    assert any(line.startswith("hint: DATABASES in shop/settings.py puts SQLite at db.sqlite3")
               for line in lines)
    assert report.written == ["fabfile.py", "hosts.yaml"] and not report.problem
    assert lines[-3:] == ["next:", "  fab setup -H web1", "  fab deploy -H web1"]


def test_static_root_and_a_database_in_a_data_dir_make_the_hooks(tmp_path: Path) -> None:
    root = django_project(tmp_path / "site", project="shop")
    settings = django_settings(root)
    edit(settings, "STATIC_URL = 'static/'",
         "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 'staticfiles'")
    edit(settings, "BASE_DIR / 'db.sqlite3'", "BASE_DIR / 'data' / 'db.sqlite3'")
    (root / "requirements.txt").write_text("Django==5.1.4\n")
    report, text, data, inv = initialized(root, server_name="localhost")
    app = inv.host("web1").app
    assert app.static == {"/static/": "staticfiles"}
    assert app.shared_dirs == ("data", "staticfiles")  # the app writes both; the release is RO
    assert [h.command for h in app.hooks["before_switch"]] == [COLLECTSTATIC, MIGRATE]
    assert 'static: {"/static/": "staticfiles"}' in text
    lines = report.lines()
    assert "static: /static/ -> staticfiles (STATIC_URL and STATIC_ROOT in shop/settings.py, " \
           "served by nginx)" in lines
    assert "requirements: requirements.txt (1 requirement, installed into the server's venv)" \
        in lines
    assert not any("STATIC_ROOT" in line or "ALLOWED_HOSTS" in line
                   for line in lines if line.startswith("hint:"))


def test_the_commented_static_lines_work_once_static_root_is_set(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    _, text, _, _ = initialized(root)
    live = uncommented(text, 'static: {"/static/": "staticfiles"}', "shared_dirs: [staticfiles]")
    (root / "hosts.yaml").write_text(live)
    app = config.load(root / "hosts.yaml").host("web1").app
    assert app.static == {"/static/": "staticfiles"} and app.shared_dirs == ("staticfiles",)


def test_split_settings_and_os_path_join(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop", project="shop")
    (root / "shop" / "settings.py").unlink()
    write(root, {
        "shop/settings/__init__.py": "",
        "shop/settings/base.py": '''
            import os

            BASE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            INSTALLED_APPS = ["django.contrib.staticfiles"]
            ROOT_URLCONF = "shop.urls"
            STATIC_URL = "/assets/"
            STATIC_ROOT = os.path.join(BASE_DIR, "var", "static")
            DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"}}
            ALLOWED_HOSTS = [".example.com"]
        ''',
        "shop/settings/production.py": "from .base import *  # noqa\n\nDEBUG = False\n",
    })
    edit(root / "manage.py", "shop.settings", "shop.settings.production")
    report, _, _, inv = initialized(root, server_name="example.com www.example.com")
    app = inv.host("web1").app
    assert app.wsgi == "shop.wsgi:application"
    assert app.static == {"/assets/": "var/static"} and app.shared_dirs == ("var/static",)
    # a database server: migrate runs; no admin installed: / with a comment saying what a 404 means
    assert [h.command for h in app.hooks["before_switch"]] == [COLLECTSTATIC, MIGRATE]
    assert app.health.path == "/"
    text = (root / "hosts.yaml").read_text()
    assert "# a 404 on / fails the health check: set health.path" in text
    assert not any("ALLOWED_HOSTS" in line for line in report.lines())


def test_allowed_hosts_hint_names_the_server_name(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    report, _, _, _ = initialized(root, server_name="shop.example.com")
    assert "hint: ALLOWED_HOSTS in shop/settings.py must include the server_name " \
           "(shop.example.com): Django answers 400 to other hosts" in report.lines()


def test_static_root_outside_the_app_and_a_cdn(tmp_path: Path) -> None:
    root = django_project(tmp_path / "a")
    edit(django_settings(root), "STATIC_URL = 'static/'",
         "STATIC_URL = 'static/'\nSTATIC_ROOT = '/var/www/static'")
    report, text, _, inv = initialized(root)
    assert inv.host("web1").app.static == {}
    assert any("STATIC_ROOT (shop/settings.py:" in line and "is /var/www/static, outside the app"
               in line for line in report.lines())
    root = django_project(tmp_path / "b")
    edit(django_settings(root), "STATIC_URL = 'static/'",
         "STATIC_URL = 'https://cdn.example.com/static/'")
    report, _, _, inv = initialized(root)
    assert inv.host("web1").app.static == {}
    assert "static: none (STATIC_URL is https://cdn.example.com/static/: static files are " \
           "served from there)" in report.lines()


def test_a_custom_admin_prefix_is_the_health_path(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    edit(root / "shop" / "urls.py", "path('admin/', admin.site.urls)",
         "path('backoffice/', admin.site.urls)")
    _, _, _, inv = initialized(root)
    assert inv.host("web1").app.health.path == "/backoffice/login/"


def test_the_settings_are_read_never_run(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    marker = tmp_path / "ran"
    edit(django_settings(root), "DEBUG = True",
         f"DEBUG = True\nopen({str(marker)!r}, 'w').write('ran')")
    (root / "shop" / "wsgi.py").write_text(textwrap.dedent(f"""
        open({str(marker)!r}, 'w').write('ran')
        application = None
    """))
    initialized(root)
    assert not marker.exists()


def test_a_static_url_hosts_yaml_cannot_hold_is_left_out_with_a_hint(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    edit(django_settings(root), "STATIC_URL = 'static/'",
         "STATIC_URL = 'my static/'\nSTATIC_ROOT = BASE_DIR / 'staticfiles'")
    report, _, _, inv = initialized(root)
    app = inv.host("web1").app
    assert app.static == {} and app.shared_dirs == ()
    assert any(line.startswith("hint: static: /my static/ -> staticfiles cannot go into hosts.yaml")
               for line in report.lines())
