"""systemd: a unit per app, `Type=notify`; reload = SIGHUP to uWSGI's master."""

from __future__ import annotations

from ..privilege import RootCommand, root
from .base import ServiceManager


class Systemd(ServiceManager):
    name = "systemd"
    template = "systemd.service.j2"

    def service_file(self, service: str) -> str:
        return f"/etc/systemd/system/{service}.service"

    def _ctl(self, verb: str) -> RootCommand:
        return root("systemctl", verb, self.service)

    @property
    def is_active(self) -> str:
        return f"systemctl is-active -q {self.svc}"

    @property
    def start(self) -> str:
        return str(self._ctl("start"))

    @property
    def restart(self) -> str:
        return str(self._ctl("restart"))

    @property
    def graceful(self) -> str:
        return str(self._ctl("reload"))

    @property
    def main_pid(self) -> str:
        return f"systemctl show -p MainPID --value {self.svc}"

    @property
    def why_not_started(self) -> str:
        return f"journalctl -u {self.svc} -n 20 --no-pager >&2 || true"

    @property
    def apply_config(self) -> str:
        return (f"{root('systemctl', 'daemon-reload', granted=False)};"
                f" {root('systemctl', 'enable', '-q', self.service, granted=False)}")

    def granted(self) -> list[RootCommand]:
        return [self._ctl(verb) for verb in ("start", "reload", "restart")]

    @property
    def setup_apply(self) -> str:
        return f"systemctl daemon-reload; systemctl enable -q {self.svc}"
