"""wsgiship.layout: where things live on the server (pure names)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes import NAME

from wsgiship import layout


def test_paths() -> None:
    p = layout.Paths("/srv/shop", "shop")
    assert (p.releases, p.shared, p.venvs, p.current) == (
        "/srv/shop/releases", "/srv/shop/shared", "/srv/shop/venvs", "/srv/shop/current")
    assert (p.lock, p.log, p.app_log) == (
        "/srv/shop/.lock", "/srv/shop/deploys.log", "/srv/shop/shared/log/uwsgi.log")
    assert p.run_dir == "/srv/shop/shared/run"
    # nginx's socket (a link to the live slot's), and an older wsgiship's single uWSGI's fifo
    assert (p.socket, p.fifo) == ("/srv/shop/shared/run/uwsgi.sock",
                                  "/srv/shop/shared/run/uwsgi.fifo")
    assert p.manager == "systemd"
    # one template unit for the slots' instances
    assert (p.service, p.service_file, p.nginx_site) == (
        "wsgiship-shop", "/etc/systemd/system/wsgiship-shop@.service", "wsgiship-shop")
    assert p.release(NAME) == f"/srv/shop/releases/{NAME}"
    assert not hasattr(p, "unit_file")


def test_slots() -> None:
    p = layout.Paths("/srv/shop", "shop")
    assert layout.SLOTS == ("a", "b")
    assert p.slots == "/srv/shop/slots"
    assert [p.slot(s) for s in layout.SLOTS] == ["/srv/shop/slots/a", "/srv/shop/slots/b"]
    assert [(p.slot_socket(s), p.slot_fifo(s)) for s in layout.SLOTS] == [
        ("/srv/shop/shared/run/uwsgi-a.sock", "/srv/shop/shared/run/uwsgi-a.fifo"),
        ("/srv/shop/shared/run/uwsgi-b.sock", "/srv/shop/shared/run/uwsgi-b.fifo")]
    # nginx's socket is none of the slots' own: it links to the live one
    assert p.socket not in {p.slot_socket(s) for s in layout.SLOTS}


def test_paths_under_supervisor() -> None:
    p = layout.Paths("/srv/shop", "shop", "supervisor")
    assert p.service_file == "/etc/supervisor/conf.d/wsgiship-shop.conf"
    assert p.service == "wsgiship-shop"
    # the rest does not depend on the manager
    systemd = layout.Paths("/srv/shop", "shop")
    for name in ("releases", "shared", "venvs", "current", "lock", "log", "app_log", "run_dir",
                 "socket", "fifo", "service", "nginx_site", "slots"):
        assert getattr(p, name) == getattr(systemd, name), name


def test_paths_for_app(make_app) -> None:
    assert layout.paths_for(make_app(name="blog")) == layout.Paths("/srv/blog", "blog")
    assert layout.paths_for(make_app(name="blog", service_manager="supervisor")) == (
        layout.Paths("/srv/blog", "blog", "supervisor"))


@pytest.mark.parametrize("get, expected", [
    (lambda p: p.log_dir, "/srv/shop/shared/log"),
    (lambda p: p.nginx_available, "/etc/nginx/sites-available/wsgiship-shop"),
    (lambda p: p.nginx_enabled, "/etc/nginx/sites-enabled/wsgiship-shop"),
    (lambda p: p.nginx_error_log, "/var/log/nginx/shop.error.log"),
    (lambda p: p.nginx_access_log, "/var/log/nginx/shop.access.log"),
    (lambda p: p.config(NAME, "uwsgi.ini"), f"/srv/shop/releases/{NAME}/.wsgiship/uwsgi.ini"),
    (lambda p: p.config("current", "nginx.conf"), "/srv/shop/current/.wsgiship/nginx.conf"),
    (lambda p: p.upload(NAME), f"/srv/shop/.upload-{NAME}.tar.gz"),
    (lambda p: p.uv, "/opt/wsgiship/uv/bin/uv"),  # root's, by fab setup, outside deploy_to
    (lambda p: p.uv_cache, "/srv/shop/.cache/uv"),            # the venvs' filesystem
    (lambda p: p.wheelhouse, "/srv/shop/wheelhouse"),
    (lambda p: p.dirs, ["/srv/shop", "/srv/shop/releases", "/srv/shop/shared", "/srv/shop/venvs",
                        "/srv/shop/shared/log", "/srv/shop/shared/run", "/srv/shop/slots"]),
    (lambda p: p.slot_socket("b"), "/srv/shop/shared/run/uwsgi-b.sock"),
])
def test_more_paths(get: Callable[[layout.Paths], object], expected: object) -> None:
    assert get(layout.Paths("/srv/shop", "shop")) == expected
    assert get(layout.Paths("/srv/shop", "shop", "supervisor")) == expected


def test_paths_of_an_unknown_manager() -> None:
    p = layout.Paths("/srv/shop", "shop", "upstart")
    assert p.releases == "/srv/shop/releases"  # only the service file needs the manager
    with pytest.raises(ValueError, match="unknown service manager 'upstart'"):
        _ = p.service_file
