"""The nginx site with HTTPS (wsgiship/templates/nginx.conf.j2 with app.tls): the HTTP server
(the ACME challenges, then the redirect or the app), the HTTPS server (certificate paths from
the app's name and the kind, Mozilla's intermediate settings, HSTS), the HTTP-only site fab setup
serves before an ACME certificate exists; without tls the site is as it always was."""

from __future__ import annotations

import re

import pytest

from wsgiship import render

NAME = "20250101T000000Z-abc1234"
NAMES = "shop.example.com www.shop.example.com"
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
           "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")

PLAIN = """\
# nginx site for hello, release 20250101T000000Z-abc1234 (rendered by wsgiship)
server {
    listen 80;
    server_name _;

    access_log /var/log/nginx/hello.access.log;
    error_log /var/log/nginx/hello.error.log;

    location /static/ {
        alias /srv/hello/current/static/;
    }

    location / {
        include /etc/nginx/uwsgi_params;
        uwsgi_pass unix:/srv/hello/shared/run/uwsgi.sock;
    }
}
"""


def parse(text: str) -> list:
    """nginx config as nested lists: a directive is a tuple of words; a block is
    (words..., [children])."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};"]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].append(tuple(words))
            words = []
        elif token == "{":
            block: list = []
            stack[-1].append((*words, block))
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words
    return stack[0]


def servers(text: str) -> list[list]:
    top = parse(text)
    assert all(item[0] == "server" for item in top)
    return [item[-1] for item in top]


def directives(block: list) -> list[tuple]:
    return [d for d in block if not isinstance(d[-1], list)]


def locations(block: list) -> dict[str, list]:
    return {" ".join(d[1:-1]): d[-1] for d in block if d[0] == "location"}


APP_LOCATIONS = {"/static/": [("alias", "/srv/shop/current/static/")],
                 "/": [("include", "/etc/nginx/uwsgi_params"),
                       ("uwsgi_pass", "unix:/srv/shop/shared/run/uwsgi.sock")]}
CHALLENGE = {"^~ /.well-known/acme-challenge/": [("root", "/var/lib/wsgiship/acme/shop"),
                                                ("default_type", "text/plain")]}


def site(make_app, https: bool = True, **settings: object) -> str:
    app = make_app(name="shop", server_name=NAMES, static={"/static": "static"}, **settings)
    return render.render(app, NAME, "deploy", "r", https=https)[".wsgiship/nginx.conf"]


def test_without_tls_the_site_is_as_it_was(make_app) -> None:
    text = render.render(make_app(static={"/static/": "static"}), NAME, "deploy", "r")
    assert text[".wsgiship/nginx.conf"] == PLAIN


def https_server(tls_path: str, port: str = "443", hsts: int = 0) -> list[tuple]:
    return [("listen", port, "ssl", "http2"), ("server_name", *NAMES.split()),
            ("access_log", "/var/log/nginx/shop.access.log"),
            ("error_log", "/var/log/nginx/shop.error.log"),
            ("ssl_certificate", f"{tls_path}/fullchain.pem"),
            ("ssl_certificate_key", f"{tls_path}/privkey.pem"),
            ("ssl_protocols", "TLSv1.2", "TLSv1.3"),
            ("ssl_ecdh_curve", "X25519:prime256v1:secp384r1"),
            ("ssl_ciphers", CIPHERS),
            ("ssl_prefer_server_ciphers", "off"), ("ssl_session_timeout", "1d"),
            ("ssl_session_cache", "shared:wsgiship_shop:10m"), ("ssl_session_tickets", "off"),
            *([("add_header", "Strict-Transport-Security", f'"max-age={hsts}"', "always")]
              if hsts else [])]


def test_acme_redirects_http_but_the_challenges(make_app) -> None:
    text = site(make_app, tls={"email": "ops@example.com"})
    http, https = servers(text)
    assert directives(http) == [("listen", "80"), ("server_name", *NAMES.split()),
                                ("access_log", "/var/log/nginx/shop.access.log"),
                                ("error_log", "/var/log/nginx/shop.error.log")]
    assert locations(http) == {**CHALLENGE, "/": [("return", "301", "https://$host$request_uri")]}
    assert directives(https) == https_server("/etc/letsencrypt/live/wsgiship-shop")
    assert locations(https) == APP_LOCATIONS
    assert "ssl_stapling" not in text


def test_another_https_port_hsts_and_no_redirect(make_app) -> None:
    http, https = servers(site(make_app, https_port=8443, http_port=8080,
                               tls={"email": "ops@example.com", "hsts": 31536000}))
    assert locations(http)["/"] == [("return", "301", "https://$host:8443$request_uri")]
    assert directives(https) == https_server("/etc/letsencrypt/live/wsgiship-shop", "8443",
                                             hsts=31536000)
    http, https = servers(site(make_app, tls={"email": "ops@example.com", "redirect": False}))
    assert locations(http) == {**CHALLENGE, **APP_LOCATIONS}   # HTTP serves the app too
    assert locations(https) == APP_LOCATIONS


def test_own_certificate_has_no_challenges(make_app) -> None:
    http, https = servers(site(make_app, tls={"certificate": "c.pem", "key": "k.pem"}))
    assert locations(http) == {"/": [("return", "301", "https://$host$request_uri")]}
    assert directives(https) == https_server("/etc/wsgiship/tls/shop")


def test_before_the_certificate_http_only_with_the_challenges(make_app) -> None:
    # what fab setup serves while certbot gets the first certificate: the app as before, the
    # challenges, no redirect, no HTTPS server (nginx -t would fail without its files)
    text = site(make_app, https=False, tls={"email": "ops@example.com", "hsts": 60})
    (http,) = servers(text)
    assert locations(http) == {**CHALLENGE, **APP_LOCATIONS}
    assert "ssl" not in text and "Strict-Transport-Security" not in text


@pytest.mark.parametrize("tls", [{"email": "ops@example.com"}, {"certificate": "c", "key": "k"}])
def test_setup_and_a_release_render_the_same_site(make_app, tls: dict) -> None:
    # the deploy compares its release's site with the installed one, comments aside
    app = make_app(name="shop", server_name=NAMES, tls=tls)
    a = render.render(app, "setup", "deploy", "")[".wsgiship/nginx.conf"]
    b = render.render(app, NAME, "deploy", "r")[".wsgiship/nginx.conf"]
    strip = [line for line in a.splitlines() if not line.lstrip().startswith("#")]
    assert strip == [line for line in b.splitlines() if not line.lstrip().startswith("#")]


def test_an_override_template_sees_tls(make_app, tmp_path) -> None:
    overrides = tmp_path / "tpl"
    overrides.mkdir()
    (overrides / "nginx.conf.j2").write_text(
        "{{ tls.kind }} {{ tls.certificate }} {{ tls.https_port }} {{ tls.webroot }}\n")
    app = make_app(templates="tpl", server_name=NAMES, tls={"email": "ops@example.com"})
    assert render.render(app, NAME, "deploy", "r")[".wsgiship/nginx.conf"] == (
        "acme /etc/letsencrypt/live/wsgiship-hello/fullchain.pem 443 /var/lib/wsgiship/acme/hello\n")
