"""supervisor: a program per app in /etc/supervisor/conf.d; reload = SIGHUP to uWSGI's master."""

from __future__ import annotations

from ..privilege import RootCommand, root
from .base import ServiceManager


class Supervisor(ServiceManager):
    name = "supervisor"
    template = "supervisor.conf.j2"
    packages = ("supervisor",)

    def service_file(self, service: str) -> str:
        return f"/etc/supervisor/conf.d/{service}.conf"

    def _ctl(self, *args: str) -> RootCommand:
        return root("supervisorctl", *args)

    @property
    def is_active(self) -> str:
        return f"{self._ctl('status', self.service)} 2>/dev/null | grep -q RUNNING"

    @property
    def start(self) -> str:
        running = self.is_active
        return (f"{{ {self._ctl('reread')} >/dev/null; {self._ctl('update', self.service)}"
                f" >/dev/null; {self._ctl('start', self.service)} >/dev/null 2>&1 || true;"
                f" for i in $(seq 1 100); do {running} && break; sleep 0.2; done; {running}; }}")

    @property
    def restart(self) -> str:
        # `supervisorctl update` (apply_config) already restarted a changed one
        return f"{self.is_active} || {self.start}"

    @property
    def graceful(self) -> str:
        return f"{self._ctl('signal', 'HUP', self.service)} >/dev/null"

    @property
    def main_pid(self) -> str:
        return str(self._ctl("pid", self.service))

    @property
    def why_not_started(self) -> str:
        return f"{self._ctl('tail', self.service, 'stderr')} >&2 || true"

    @property
    def apply_config(self) -> str:
        return f"{self._ctl('reread')} >/dev/null; {self._ctl('update', self.service)} >/dev/null"

    def granted(self) -> list[RootCommand]:
        svc = self.service
        return [*(self._ctl(verb, svc) for verb in ("start", "status", "pid")),
                self._ctl("signal", "HUP", svc), self._ctl("update", svc),
                self._ctl("reread"), self._ctl("tail", svc, "stderr")]

    @property
    def setup_enable(self) -> str:
        return ("systemctl is-enabled -q supervisor || systemctl enable -q supervisor;"
                " systemctl is-active -q supervisor || systemctl start supervisor;"
                # supervisord answers on its socket a moment after systemd says it started
                " for i in $(seq 1 50); do supervisorctl pid >/dev/null 2>&1 && break;"
                " sleep 0.2; done")

    @property
    def setup_apply(self) -> str:
        return "supervisorctl reread >/dev/null"
