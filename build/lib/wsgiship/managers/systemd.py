"""systemd: a template unit per app (`wsgiship-<app>@.service`), one instance per slot,
`Type=notify` (a start returns when uWSGI is ready)."""

from __future__ import annotations

from ..privilege import RootCommand, root
from ..shell import q
from .base import ServiceManager


class Systemd(ServiceManager):
    name = "systemd"
    template = "systemd.service.j2"

    def instance(self, slot: str) -> str:
        return f"{self.service}@{slot}.service"

    def service_file(self, service: str) -> str:
        return f"/etc/systemd/system/{service}@.service"

    def _ctl(self, *args: str) -> RootCommand:
        return root("systemctl", *args)

    def is_active(self, slot: str) -> str:
        return f"systemctl is-active -q {self.quoted(slot)}"

    def start(self, slot: str) -> str:
        # a unit whose condition failed (no slot link) "starts" doing nothing: ask again
        return f"{{ {self._ctl('start', self.instance(slot))} && {self.is_active(slot)}; }}"

    def stop(self, slot: str) -> str:
        return str(self._ctl("stop", self.instance(slot)))

    def stop_later(self, slot: str) -> str:
        return str(self._ctl("stop", "--no-block", self.instance(slot)))

    def main_pid(self, slot: str) -> str:
        return f"systemctl show -p MainPID --value {self.quoted(slot)}"

    def why_not_started(self, slot: str) -> str:
        # (the journal is root's: the unit's state and exit status say why to anyone)
        return (f"{{ systemctl status --no-pager -n 0 {self.quoted(slot)};"
                f" journalctl -u {self.quoted(slot)} -n 20 --no-pager -q; }} >&2 2>/dev/null || true")

    @property
    def apply_config(self) -> str:
        return (f"{root('systemctl', 'daemon-reload', granted=False)};"
                f" {root('systemctl', 'enable', '-q', *map(self.instance, self.slots), granted=False)}")

    @property
    def legacy_active(self) -> str:
        return f"systemctl is-active -q {q(self.service + '.service')}"

    @property
    def legacy_stop(self) -> str:
        unit = self.service + ".service"
        return (f"{{ {self._ctl('stop', unit)}; {self._ctl('disable', '-q', unit)}"
                " 2>/dev/null || true; }")

    def granted(self) -> list[RootCommand]:
        unit = self.service + ".service"
        return [*(self._ctl(verb, self.instance(s)) for s in self.slots
                  for verb in ("start", "stop")),
                *(self._ctl("stop", "--no-block", self.instance(s)) for s in self.slots),
                self._ctl("stop", unit), self._ctl("disable", "-q", unit)]

    @property
    def setup_apply(self) -> str:
        return (f"systemctl daemon-reload; systemctl enable -q"
                f" {' '.join(map(self.quoted, self.slots))}")
