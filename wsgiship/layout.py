"""Where things live on the server for one app: pure names, no I/O.

    <deploy_to>/releases/<release>/   the code, REVISION, .venv link, .wsgiship/ (rendered configs;
                                      site/: the app installed, with install: project)
    <deploy_to>/current               symlink to the live release
    <deploy_to>/slots/<a|b>           symlink to the release a uWSGI instance (slot) runs
    <deploy_to>/venvs/<key>/          one venv per hash of (requirements, python)
    <deploy_to>/shared/               files and dirs kept across releases; log/ and run/
    <deploy_to>/.lock/holder          who deploys now
    <deploy_to>/deploys.log           one JSON line per deploy or rollback
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import managers

if TYPE_CHECKING:
    from .config import App

CONFIG_DIR = ".wsgiship"  # inside each release: the rendered configs travel with the code
# inside a release: the app itself, installed there with `install: project` (first on its path)
SITE_DIR = f"{CONFIG_DIR}/site"
NGINX_SITES = "/etc/nginx"


TOOLS = "/opt/wsgiship"
SLOTS = managers.SLOTS  # two uWSGI instances: the live release's, and the next one's beside it


@dataclass(frozen=True)
class Paths:
    """Where things live on the server for one app."""

    deploy_to: str
    name: str
    manager: str = "systemd"

    @property
    def releases(self) -> str:
        return f"{self.deploy_to}/releases"

    @property
    def shared(self) -> str:
        return f"{self.deploy_to}/shared"

    @property
    def venvs(self) -> str:
        return f"{self.deploy_to}/venvs"

    @property
    def current(self) -> str:
        return f"{self.deploy_to}/current"

    @property
    def tools(self) -> str:
        """Root's tools for deploys, shared by the apps of a server: outside <deploy_to>, whose
        entries the deploy user may rename (root must never run or write anything there)."""
        return TOOLS

    @property
    def uv(self) -> str:
        """uv, installed by `fab setup` in its own venv (root's: the deploy user only runs it)."""
        return f"{TOOLS}/uv/bin/uv"

    @property
    def uv_cache(self) -> str:
        """uv's cache: on the venvs' filesystem, so installs are hard links."""
        return f"{self.deploy_to}/.cache/uv"

    @property
    def wheelhouse(self) -> str:
        return f"{self.deploy_to}/wheelhouse"

    @property
    def lock(self) -> str:
        return f"{self.deploy_to}/.lock"

    @property
    def log(self) -> str:
        return f"{self.deploy_to}/deploys.log"

    @property
    def log_dir(self) -> str:
        return f"{self.shared}/log"

    @property
    def app_log(self) -> str:
        return f"{self.log_dir}/uwsgi.log"

    @property
    def run_dir(self) -> str:
        """Socket and fifo. The dir is setgid www-data, so the socket is nginx's group without
        uWSGI running in that group (which would hide its /proc entries from the deploy user)."""
        return f"{self.shared}/run"

    @property
    def socket(self) -> str:
        """What nginx connects to: a link to the live slot's socket, swapped to switch traffic."""
        return f"{self.run_dir}/uwsgi.sock"

    @property
    def fifo(self) -> str:
        """The master fifo of a single-instance uWSGI of an older wsgiship (retired on upgrade)."""
        return f"{self.run_dir}/uwsgi.fifo"

    @property
    def slots(self) -> str:
        return f"{self.deploy_to}/slots"

    def slot(self, slot: str) -> str:
        """The link to the release a slot's uWSGI runs (its unit reads its venv and ini there)."""
        return f"{self.slots}/{slot}"

    def slot_socket(self, slot: str) -> str:
        return f"{self.run_dir}/uwsgi-{slot}.sock"

    def slot_fifo(self, slot: str) -> str:
        return f"{self.run_dir}/uwsgi-{slot}.fifo"

    @property
    def service(self) -> str:
        return f"wsgiship-{self.name}"

    @property
    def service_file(self) -> str:
        return managers.get(self.manager).service_file(self.service)

    @property
    def nginx_site(self) -> str:
        return f"wsgiship-{self.name}"

    @property
    def nginx_available(self) -> str:
        return f"{NGINX_SITES}/sites-available/{self.nginx_site}"

    @property
    def nginx_enabled(self) -> str:
        return f"{NGINX_SITES}/sites-enabled/{self.nginx_site}"

    @property
    def nginx_error_log(self) -> str:
        return f"/var/log/nginx/{self.name}.error.log"

    @property
    def nginx_access_log(self) -> str:
        return f"/var/log/nginx/{self.name}.access.log"

    def release(self, name: str) -> str:
        return f"{self.releases}/{name}"

    def config(self, release: str, name: str) -> str:
        """A rendered config file of a release (`current` for the live one)."""
        base = self.current if release == "current" else self.release(release)
        return f"{base}/{CONFIG_DIR}/{name}"

    def upload(self, release: str) -> str:
        return f"{self.deploy_to}/.upload-{release}.tar.gz"

    @property
    def dirs(self) -> list[str]:
        """The directories of the layout, parents first."""
        return [self.deploy_to, self.releases, self.shared, self.venvs, self.log_dir,
                self.run_dir, self.slots]


def paths_for(app: App) -> Paths:
    return Paths(app.deploy_to, app.name, app.service_manager)
