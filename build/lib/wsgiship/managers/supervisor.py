"""supervisor: a program per slot (`wsgiship-<app>-a`, `-b`) in /etc/supervisor/conf.d."""

from __future__ import annotations

from ..privilege import FULL_PATHS, RootCommand, root
from ..shell import cmd, q
from .base import ServiceManager


class Supervisor(ServiceManager):
    name = "supervisor"
    template = "supervisor.conf.j2"
    packages = ("supervisor",)

    def instance(self, slot: str) -> str:
        return f"{self.service}-{slot}"

    def service_file(self, service: str) -> str:
        return f"/etc/supervisor/conf.d/{service}.conf"

    def _ctl(self, *args: str) -> RootCommand:
        return root("supervisorctl", *args)

    def is_active(self, slot: str) -> str:
        return f"{self._ctl('status', self.instance(slot))} 2>/dev/null | grep -q RUNNING"

    def start(self, slot: str) -> str:
        # (added to supervisord first when `fab setup` installed the config: setup only rereads)
        # startsecs=0: RUNNING once spawned; the deploy's check waits for the app to answer
        inst = self.instance(slot)
        stopping = f"{self._ctl('status', inst)} 2>/dev/null | grep -q STOPPING"
        return (f"{{ for i in $(seq 1 600); do {stopping} || break; sleep 0.1; done;"
                f" {self._ctl('reread')} >/dev/null; {self._ctl('update', inst)} >/dev/null;"
                f" {self._ctl('start', inst)} >/dev/null 2>&1 || true; {self.is_active(slot)}; }}")

    def stop(self, slot: str) -> str:
        return f"{{ {self._ctl('stop', self.instance(slot))} >/dev/null; }}"

    def stop_later(self, slot: str) -> str:
        # supervisorctl waits for the stop: in the background, once sudo said it may
        inst = self.instance(slot)
        full = cmd(FULL_PATHS["supervisorctl"], "stop", inst)
        why = f"sudo does not allow: supervisorctl stop {inst} (run fab setup)"
        return (f'{{ if [ -n "$SUDO" ] && ! $SUDO -l {full} >/dev/null 2>&1; then'
                f" echo {q(why)} >&2; exit 1; fi;"
                f" ( {self._ctl('stop', inst)} >/dev/null 2>&1 & ); }}")

    def main_pid(self, slot: str) -> str:
        return str(self._ctl("pid", self.instance(slot)))

    def why_not_started(self, slot: str) -> str:
        return f"{self._ctl('tail', self.instance(slot), 'stderr')} >&2 || true"

    @property
    def apply_config(self) -> str:
        # reread only: `update` restarts a program whose config changed, the live slot's too;
        # each slot's program is updated by the start that uses it (an older wsgiship's
        # single program by the retire after the switch)
        return f"{self._ctl('reread')} >/dev/null"

    @property
    def legacy_active(self) -> str:
        return f"{self._ctl('status', self.service)} 2>/dev/null | grep -q RUNNING"

    @property
    def legacy_stop(self) -> str:
        # no longer in the config file: `update` of it stops and removes it
        return f"{{ {self._ctl('update', self.service)} >/dev/null || true; }}"

    def granted(self) -> list[RootCommand]:
        return [*(self._ctl(verb, self.instance(s)) for s in self.slots
                  for verb in ("start", "stop", "status", "pid")),
                *(self._ctl("tail", self.instance(s), "stderr") for s in self.slots),
                *(self._ctl("update", self.instance(s)) for s in self.slots),
                self._ctl("reread"), self._ctl("status", self.service),
                self._ctl("update", self.service)]

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
