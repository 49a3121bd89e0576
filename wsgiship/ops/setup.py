"""`fab setup`: make a fresh Debian/Ubuntu server ready, as its steps; each reports
`changed: ...` or `ok (already done)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import managers
from ..commands import setup as cmds
from ..commands import venv
from ..config import Host
from ..errors import WsgishipError
from ..layout import CONFIG_DIR, paths_for
from ..output import Reporter
from ..remote import Remote
from ..render import render
from ..source import pins_uwsgi_sdist
from .tls import packages as tls_packages
from .tls import run_step as tls_step
from .tls import site_guard, step_script

# ssh's own default identities: what a login with no identity set offers (as ssh-copy-id takes)
DEFAULT_PUBLIC_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")


def authorized_keys(host: Host) -> tuple[str, ...]:
    """The public keys the deploy user gets: authorized_keys files, else identity + .pub, else
    the default keys of ~/.ssh that exist (a login with no identity set offers those)."""
    files = host.authorized_keys or (
        (host.identity.with_name(host.identity.name + ".pub"),) if host.identity else
        tuple(p for name in DEFAULT_PUBLIC_KEYS if (p := Path.home() / ".ssh" / name).is_file()))
    keys: list[str] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise WsgishipError(f"hosts.{host.alias}.authorized_keys: cannot read "
                              f"{path}: {exc.strerror}") from None
        keys += [line.strip() for line in lines
                 if line.strip() and not line.strip().startswith("#")]
    return tuple(keys)


def steps(host: Host) -> list[tuple[str, str]]:
    """(name, root script) of every setup step for this host, in order."""
    app = host.app
    user = host.user or "root"
    p = paths_for(app)
    out = [("os", cmds.check_os()),
           ("packages", cmds.packages((*managers.get(app.service_manager).packages,
                                       *tls_packages(app)),
                                      compiler=app.needs_compiler
                                      or pins_uwsgi_sdist(app.source)))]
    if user != "root":
        out.append(("deploy user", cmds.deploy_user(user, authorized_keys(host))))
    configs = render(app, "setup", app.runs_as(user), "")
    out += [("layout", cmds.layout(p, user, app.runs_as(user), app.shared_dirs, app.shared_files)),
            *([("uv", venv.install_uv(p))] if app.installer != "pip" else []),
            ("service", cmds.service(p, configs[f"{CONFIG_DIR}/service"])),
            ("site", cmds.site(p, configs[f"{CONFIG_DIR}/nginx.conf"], site_guard(app)))]
    if user != "root":
        out.append(("sudo rules", cmds.sudoers(p, user, app.runs_as(user))))
    out.append(("nginx", cmds.nginx(app.remove_default_site)))
    if app.tls is not None:  # last: an ACME server's check needs nginx serving the site
        out.append(("tls", step_script(host, app.runs_as(user))))
    return out


@dataclass
class Setup:
    remote: Remote   # logged in as the host's setup_user
    host: Host
    out: Reporter

    def run(self) -> int:
        """Run every step; return how many changed something."""
        todo = steps(self.host)
        with self.out.step("connect") as st:
            self.remote.open()
            st.detail = f"{self.remote.user}@{self.remote.conn.host}"
        changed = 0
        try:
            for name, body in todo:
                with self.out.step(name) as st:
                    did, st.detail = (tls_step(self.remote, self.host, body) if name == "tls"
                                      else self.step(name, body))
                    changed += did
        finally:
            self.remote.close()
        return changed

    def step(self, name: str, body: str) -> tuple[bool, str]:
        """Run one step's root script: (whether it changed something, its line)."""
        res = self.remote.run(body, root=True, check=False, what=f"setup: {name}", timeout=900)
        if res.code == cmds.UNSUPPORTED_OS:
            raise self.remote.error(res.stderr.strip())
        if not res.ok:
            raise self.remote.error(f"setup step {name} failed (exit {res.code})", res.output)
        facts = res.facts()
        if "changed" in facts:
            return True, "changed: " + facts["changed"]
        return False, facts.get("note") or facts.get("os", "ok (already done)")
