"""What wsgiship asks of a service manager: shell snippets for the app's uWSGI instances (one per
slot, see layout.SLOTS), and its root commands.

Snippets are pieces of bash for the deploy's scripts; root commands in them are built with
`privilege.root` (they read `$SUDO ...`). `setup_*` snippets run inside `fab setup`'s scripts,
which run as root already. `legacy_*` snippets retire the single uWSGI service of an older
wsgiship once a slot serves.
"""

from __future__ import annotations

from ..privilege import RootCommand
from ..shell import q

SLOTS = ("a", "b")  # two uWSGI instances: the live release's, and the next one's beside it


class ServiceManager:
    name: str = ""
    template: str = ""                   # the service config's template in templates/
    packages: tuple[str, ...] = ()       # Debian packages `fab setup` installs for it

    def __init__(self, service: str) -> None:
        self.service = service

    def instance(self, slot: str) -> str:
        """The name the manager knows a slot's uWSGI by."""
        raise NotImplementedError

    def service_file(self, service: str) -> str:
        """Where the service's config is installed."""
        raise NotImplementedError

    # --- snippets for the deploy (root commands carry $SUDO) ---

    def is_active(self, slot: str) -> str:
        """Succeeds when the slot's uWSGI runs."""
        raise NotImplementedError

    def start(self, slot: str) -> str:
        """Start the slot's uWSGI; fails when it does not come up."""
        raise NotImplementedError

    def stop(self, slot: str) -> str:
        """Stop the slot's uWSGI gracefully and wait until it is gone (a no-op when stopped)."""
        raise NotImplementedError

    def stop_later(self, slot: str) -> str:
        """Begin a graceful stop of the slot's uWSGI and return (fails when it may not)."""
        raise NotImplementedError

    def main_pid(self, slot: str) -> str:
        """Prints the slot's master pid (0 or nothing when it does not run)."""
        raise NotImplementedError

    def why_not_started(self, slot: str) -> str:
        """Shows the manager's last words about the slot on stderr; never fails."""
        raise NotImplementedError

    @property
    def apply_config(self) -> str:
        """Make the manager read a changed service config."""
        raise NotImplementedError

    @property
    def legacy_active(self) -> str:
        """Succeeds while the single service of an older wsgiship runs."""
        raise NotImplementedError

    @property
    def legacy_stop(self) -> str:
        """Stop and disable the older single service (after traffic left it)."""
        raise NotImplementedError

    def granted(self) -> list[RootCommand]:
        """The root commands of these snippets a restricted deploy user is allowed (sudoers)."""
        raise NotImplementedError

    @property
    def slots(self) -> tuple[str, ...]:
        return SLOTS

    def quoted(self, slot: str) -> str:
        return q(self.instance(slot))

    # --- snippets for `fab setup` (run as root) ---

    @property
    def setup_enable(self) -> str:
        """The manager itself enabled and running."""
        return ":"

    @property
    def setup_apply(self) -> str:
        """After the service config was installed."""
        raise NotImplementedError
