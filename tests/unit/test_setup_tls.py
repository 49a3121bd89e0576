"""wsgiship.commands.tls: `fab setup`'s tls step and the site step's wait, run for real as root
would run them, with fakes for nginx, systemctl and certbot (which "issues" certificates made in
the test) and every /etc and /var/lib path swapped for one in tmp_path."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import certbot_outputs
import certgen
import pytest
from fakes import add_fakes, calls, fake_env, svc_paths
from setup_scripts import calls_t

from wsgiship.commands import tls
from wsgiship.shell import script

NAMES = "shop.example.com www.shop.example.com"
SERVER = "https://acme.test/dir"
FULL = "server { listen 443 ssl; }  # full\n"
HTTP_ONLY = "server { listen 80; }  # http only\n"
BEFORE = "server { listen 8080; }\n"
MODULES = "configure arguments: --with-http_ssl_module --with-http_v2_module"
SWAPS = ("/etc/letsencrypt", "/etc/wsgiship", "/var/lib/wsgiship")

# certbot: its argv logged; prints $CERTBOT_OUT's file and fails, or "issues" $CERT_SRC's files
# into the live dir (with the renewal config that names the server)
CERTBOT = ('echo "certbot $*" >> "$CALLS"\n'
           'if [ -n "${CERTBOT_OUT:-}" ]; then cat "$CERTBOT_OUT"; exit 1; fi\n'
           'live="$LE/live/wsgiship-app"; mkdir -p "$live" "$LE/renewal"\n'
           'cp "$CERT_SRC"/*.pem "$live/"\n'
           'for a in "$@"; do [ "${prev:-}" = --server ] && echo "server = $a"'
           ' > "$LE/renewal/wsgiship-app.conf"; prev="$a"; done\n'
           'echo "Successfully received certificate."\n')
NGINX_V = ('if [ "$1" = -V ]; then echo "${NGINX_V:-' + MODULES + '}" >&2; exit 0; fi\n'
           'exec "$(dirname "$0")/nginx-fake" "$@"\n')


class Paths(type(svc_paths(Path("/x/srv/app")))):
    """The fake root's sites-enabled too (the restore removes the link it made)."""

    @property
    def nginx_enabled(self) -> str:
        return self.root + super().nginx_enabled


@pytest.fixture
def env(fakebin: Path, deploy: Path, tmp_path: Path) -> dict[str, str]:
    (fakebin / "nginx").rename(fakebin / "nginx-fake")
    add_fakes(fakebin, {"certbot": CERTBOT, "nginx": NGINX_V})
    return fake_env(fakebin, ACTIVE="1", LE=str(tmp_path / "etc/letsencrypt"),
                    CERT_SRC=str(tmp_path / "issued"))


@pytest.fixture
def p(deploy: Path) -> Paths:
    base = svc_paths(deploy)
    return Paths(base.deploy_to, base.name, base.manager, root=base.root)


def swapped(text: str, tmp_path: Path) -> str:
    for path in SWAPS:
        text = text.replace(path, str(tmp_path / path.lstrip("/")))
    return text


def issue(tmp_path: Path, names: tuple[str, ...], days: int = 90) -> certgen.Made:
    """What the fake certbot will install: a certificate for `names`."""
    made = certgen.make(names, days=days)
    src = tmp_path / "issued"
    src.mkdir(exist_ok=True)
    (src / "cert.pem").write_bytes(made.cert_pem)
    (src / "fullchain.pem").write_bytes(made.cert_pem)
    (src / "privkey.pem").write_bytes(made.key_pem())
    return made


def live(tmp_path: Path, names: tuple[str, ...], server: str = SERVER, days: int = 90) -> None:
    """A certificate already on the server."""
    issue(tmp_path, names, days)
    d, conf = tmp_path / "etc/letsencrypt/live/wsgiship-app", tmp_path / "etc/letsencrypt/renewal"
    d.mkdir(parents=True)
    conf.mkdir(parents=True)
    for f in (tmp_path / "issued").iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    (conf / "wsgiship-app.conf").write_text(f"version = 2.1.0\nserver = {server}\n")


def installed(p: Paths, text: str = BEFORE) -> Path:
    """The site as an earlier setup installed it, enabled."""
    a, e = Path(p.nginx_available), Path(p.nginx_enabled)
    a.parent.mkdir(parents=True, exist_ok=True)
    e.parent.mkdir(parents=True, exist_ok=True)
    a.write_text(text)
    a.chmod(0o644)
    e.symlink_to("../sites-available/wsgiship-app")
    return a


def run_acme(p: Paths, env: dict[str, str], sh, tmp_path: Path, **extra: str):
    (Path(env["CALLS"])).unlink(missing_ok=True)
    body = swapped(tls.acme(p, NAMES, "ops@example.com", SERVER, FULL, HTTP_ONLY), tmp_path)
    return sh(body, env={**env, **extra})


def facts(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def steps_of(fakebin: Path, site: str) -> list[str]:
    """The calls that change things: site installs, nginx, certbot (its argv cut short)."""
    keep = []
    for c in calls_t(fakebin):
        if c.startswith("install -m 644") and c.endswith(site):
            keep.append("install site")
        elif c.startswith(("nginx -t", "systemctl reload nginx", "systemctl start nginx")):
            keep.append(c)
        elif c.startswith("certbot"):
            keep.append("certbot " + next(a for a in ("--keep-until-expiring", "--force-renewal")
                                          if a in c))
    return keep


def test_certbot_argv() -> None:
    assert tls.certbot_argv("shop", "ops@example.com", SERVER, ("a.example", "b.example"),
                            "--keep-until-expiring") == [
        "certbot", "certonly", "--non-interactive", "--agree-tos", "--email", "ops@example.com",
        "--no-eff-email", "--server", SERVER, "--webroot", "-w", "/var/lib/wsgiship/acme/shop",
        "--cert-name", "wsgiship-shop", "-d", "a.example", "-d", "b.example",
        "--keep-until-expiring", "--deploy-hook", "systemctl reload nginx"]


def test_a_first_certificate_serves_http_first_then_the_full_site(p, env, fakebin, sh,
                                                                  tmp_path) -> None:
    site = installed(p)
    made = issue(tmp_path, ("shop.example.com", "www.shop.example.com"))
    res = run_acme(p, env, sh, tmp_path)
    assert res.returncode == 0, res.stderr
    assert steps_of(fakebin, str(site)) == [
        "install site", "nginx -t -q", "systemctl reload nginx",       # HTTP only, challenges
        "certbot --keep-until-expiring",
        "install site", "nginx -t -q", "systemctl reload nginx"]       # then the full site
    got = facts(res.stdout)
    assert (got["names"], got["action"], got["site"]) == (NAMES, "obtained", "1")
    assert got["until"] == f"{made.cert.not_valid_after_utc:%Y-%m-%d}"
    assert site.read_text() == FULL
    certbot = next(c for c in calls(fakebin) if c.startswith("certbot"))
    assert f"-w {tmp_path}/var/lib/wsgiship/acme/app --cert-name wsgiship-app" in certbot
    assert "--deploy-hook systemctl reload nginx" in certbot
    # the webroot and its parents: root's, 755
    for d in ("var/lib/wsgiship", "var/lib/wsgiship/acme", "var/lib/wsgiship/acme/app"):
        assert stat.S_IMODE((tmp_path / d).stat().st_mode) == 0o755
        assert str(tmp_path / d) in got["did"]
    # again: the certificate is kept; nothing changes, nothing reloads, certbot never runs
    res = run_acme(p, env, sh, tmp_path)
    assert facts(res.stdout) == {"names": NAMES, "until": got["until"], "action": "kept",
                                 "site": "0"}
    assert steps_of(fakebin, str(site)) == []


@pytest.mark.parametrize("before", ["file", "none"])
def test_certbot_failing_puts_the_site_back_as_it_was(p, env, fakebin, sh, tmp_path,
                                                      before: str) -> None:
    site = installed(p) if before == "file" else Path(p.nginx_available)
    output = tmp_path / "certbot.out"
    output.write_text(certbot_outputs.NOT_FOUND)
    res = run_acme(p, env, sh, tmp_path, CERTBOT_OUT=str(output))
    assert res.returncode == tls.CERTBOT_FAILED
    assert res.stdout == certbot_outputs.NOT_FOUND   # for the client to read
    if before == "file":
        assert site.read_text() == BEFORE
        assert os.readlink(p.nginx_enabled) == "../sites-available/wsgiship-app"
    else:
        assert not site.exists() and not os.path.lexists(p.nginx_enabled)
    assert steps_of(fakebin, str(site)) == [
        "install site", "nginx -t -q", "systemctl reload nginx", "certbot --keep-until-expiring",
        *(["install site"] if before == "file" else []), "systemctl reload nginx"]


def test_names_that_differ_get_a_new_certificate_through_http_first(p, env, fakebin, sh,
                                                                    tmp_path) -> None:
    live(tmp_path, ("shop.example.com",))
    site = installed(p, FULL)
    issue(tmp_path, ("shop.example.com", "www.shop.example.com"))
    res = run_acme(p, env, sh, tmp_path)
    assert res.returncode == 0, res.stderr
    assert facts(res.stdout)["action"] == "renewed" and facts(res.stdout)["names"] == NAMES
    assert steps_of(fakebin, str(site)) == [
        "install site", "nginx -t -q", "systemctl reload nginx", "certbot --keep-until-expiring",
        "install site", "nginx -t -q", "systemctl reload nginx"]


@pytest.mark.parametrize("server, days, flag", [
    ("https://other.test/dir", 90, "--force-renewal"),  # another ACME server: a new one from it
    (SERVER, 20, "--keep-until-expiring"),              # under 30 days left: certbot renews
])
def test_a_certificate_certbot_renews_keeps_the_full_site(p, env, fakebin, sh, tmp_path,
                                                          server: str, days: int, flag: str) -> None:
    live(tmp_path, ("shop.example.com", "www.shop.example.com"), server=server, days=days)
    site = installed(p, FULL)
    res = run_acme(p, env, sh, tmp_path)
    assert res.returncode == 0, res.stderr
    assert facts(res.stdout)["action"] == "renewed"
    assert steps_of(fakebin, str(site)) == [f"certbot {flag}"]  # the site stays; the hook reloads


def test_an_nginx_without_http2_is_refused(p, env, sh, tmp_path) -> None:
    res = run_acme(p, env, sh, tmp_path, NGINX_V="configure arguments: --with-http_ssl_module")
    assert res.returncode == 1
    assert res.stderr == ("this nginx lacks http_v2_module, which the HTTPS site needs: install"
                          " Debian's nginx package (or override nginx.conf.j2 with"
                          " app.templates)\n")


def test_the_renewal_timer_is_enabled_and_started(p, env, fakebin, sh, tmp_path) -> None:
    live(tmp_path, ("shop.example.com", "www.shop.example.com"))
    installed(p, FULL)
    res = run_acme(p, env, sh, tmp_path, ENABLED="0", ACTIVE="0")
    assert res.returncode == 0, res.stderr
    assert facts(res.stdout)["did"].endswith("/acme/app renewal timer enabled renewal timer started")
    assert "systemctl enable -q certbot.timer" in calls(fakebin)
    assert "systemctl start certbot.timer" in calls(fakebin)


# --- the site step's wait ---


@pytest.mark.parametrize("kind, have, goes_on", [
    ("acme", None, False),
    ("acme", ("shop.example.com",), False),                          # other names
    ("acme", ("www.shop.example.com", "SHOP.example.com"), True),    # the same, in any order
    ("own", None, False),
    ("own", ("anything.example",), True),
])
def test_the_site_step_waits_for_the_certificate(tmp_path, sh, kind: str,
                                                 have: tuple[str, ...] | None, goes_on: bool) -> None:
    if have and kind == "acme":
        live(tmp_path, have)
    elif have:
        d = tmp_path / "etc/wsgiship/tls/app"
        d.mkdir(parents=True)
        (d / "fullchain.pem").write_text("x")
        (d / "privkey.pem").write_text("x")
    body = swapped(script([tls.site_guard("app", kind, NAMES), "echo went on"]), tmp_path)
    res = sh(body)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("went on\n" if goes_on else f"note={tls.WAITING}\n")


# --- your own certificate ---


def run_own(p: Paths, env: dict[str, str], tmp_path: Path, chain: bytes, key: bytes,
            **extra: str) -> subprocess.CompletedProcess[str]:
    Path(env["CALLS"]).unlink(missing_ok=True)
    data = json.dumps({"fullchain.pem": base64.b64encode(chain).decode(),
                       "privkey.pem": base64.b64encode(key).decode()})
    body = swapped(tls.own(p, FULL), tmp_path)
    assert key.decode() not in body  # the key comes on stdin only
    return subprocess.run(["bash", "-c", body], input=data, capture_output=True, text=True,
                          env={**os.environ, **env, **extra}, timeout=60)


def test_own_certificate_written_root_s_with_the_key_600(p, env, fakebin, sh, tmp_path) -> None:
    made = certgen.make(("shop.example.com",))
    site = installed(p)
    res = run_own(p, env, tmp_path, made.cert_pem, made.key_pem())
    assert res.returncode == 0, res.stderr
    assert facts(res.stdout)["cert"] == "changed" and facts(res.stdout)["site"] == "1"
    d = tmp_path / "etc/wsgiship/tls/app"
    modes = {f.name: (stat.S_IMODE(f.stat().st_mode), f.stat().st_uid) for f in d.iterdir()}
    assert modes == {"fullchain.pem": (0o644, 0), "privkey.pem": (0o600, 0)}
    assert (d / "privkey.pem").read_bytes() == made.key_pem()
    for path in (tmp_path / "etc/wsgiship", tmp_path / "etc/wsgiship/tls", d):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert steps_of(fakebin, str(site)) == ["install site", "nginx -t -q", "systemctl reload nginx"]
    assert site.read_text() == FULL
    assert made.key_pem().decode().splitlines()[1] not in res.stdout + res.stderr
    # again: nothing changes, no reload; a new certificate: written and reloaded
    res = run_own(p, env, tmp_path, made.cert_pem, made.key_pem())
    assert (facts(res.stdout)["cert"], facts(res.stdout)["site"]) == ("same", "0")
    assert steps_of(fakebin, str(site)) == []
    new = certgen.make(("shop.example.com",))
    res = run_own(p, env, tmp_path, new.cert_pem, new.key_pem())
    assert facts(res.stdout)["cert"] == "changed"
    assert steps_of(fakebin, str(site)) == ["nginx -t -q", "systemctl reload nginx"]
    assert (d / "privkey.pem").read_bytes() == new.key_pem()


def test_own_certificate_refused_by_nginx_puts_everything_back(p, env, fakebin, sh,
                                                               tmp_path) -> None:
    old, new = certgen.make(("shop.example.com",)), certgen.make(("shop.example.com",))
    site = installed(p)
    assert run_own(p, env, tmp_path, old.cert_pem, old.key_pem()).returncode == 0
    site.write_text(BEFORE)
    res = run_own(p, env, tmp_path, new.cert_pem, new.key_pem(), NGINX_RC="1",
                  NGINX_OUT="nginx: [emerg] no")
    assert res.returncode == tls.NGINX_REFUSED
    assert res.stderr == ("nginx -t failed with the HTTPS site (the site is as it was): nginx:"
                          " [emerg] no\n")
    d = tmp_path / "etc/wsgiship/tls/app"
    assert (d / "privkey.pem").read_bytes() == old.key_pem()
    assert stat.S_IMODE((d / "privkey.pem").stat().st_mode) == 0o600
    assert site.read_text() == BEFORE
    assert "systemctl reload nginx" not in calls(fakebin)


# --- a deploy's nginx -t before the certificate is there ---


@pytest.mark.parametrize("complaint, hint", [
    ("No such file or directory", True),   # fab setup has not put it there yet
    ("Permission denied", False),          # root's key: the root nginx -t after the switch judges
])
def test_a_deploy_before_the_certificate_says_run_fab_setup(deploy: Path, fakebin: Path, sh,
                                                            complaint: str, hint: bool) -> None:
    from fakes import NAME, paths
    from test_checks import nginx_release

    from wsgiship.commands import checks

    nginx_release(deploy, FULL)
    out = ('nginx: [emerg] cannot load certificate "/etc/wsgiship/tls/app/fullchain.pem":'
           f" BIO_new_file() failed (SSL: error:80000002:system library::{complaint}:calling"
           " fopen(/etc/wsgiship/tls/app/fullchain.pem, r))")
    res = sh(checks.nginx_check(paths(deploy), NAME), env=fake_env(fakebin, NGINX_RC="1",
                                                                   NGINX_OUT=out))
    assert res.returncode == (1 if hint else 0)
    assert ("the site's certificate is not on this server yet: run fab setup (it obtains or"
            " uploads it)" in res.stdout) is hint
