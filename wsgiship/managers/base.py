"""What wsgiship asks of a service manager: shell snippets for one service, and its root commands.

Snippets are pieces of bash for the deploy's scripts; root commands in them are built with
`privilege.root` (they read `$SUDO ...`). `setup_*` snippets run inside `fab setup`'s scripts,
which run as root already.
"""

from __future__ import annotations

from ..privilege import RootCommand
from ..shell import q


class ServiceManager:
    name: str = ""
    template: str = ""                   # the service config's template in templates/
    packages: tuple[str, ...] = ()       # Debian packages `fab setup` installs for it

    def __init__(self, service: str) -> None:
        self.service = service

    @property
    def svc(self) -> str:
        return q(self.service)

    def service_file(self, service: str) -> str:
        """Where the service's config is installed."""
        raise NotImplementedError

    # --- snippets for the deploy (root commands carry $SUDO) ---

    @property
    def is_active(self) -> str:
        """Succeeds when the service runs."""
        raise NotImplementedError

    @property
    def start(self) -> str:
        """Start it; fails when it does not come up."""
        raise NotImplementedError

    @property
    def restart(self) -> str:
        """A fresh start (after its config changed)."""
        raise NotImplementedError

    @property
    def graceful(self) -> str:
        """Ask uWSGI's master for a graceful reload."""
        raise NotImplementedError

    @property
    def main_pid(self) -> str:
        """Prints the master's pid."""
        raise NotImplementedError

    @property
    def why_not_started(self) -> str:
        """Shows the manager's last words about the service on stderr; never fails."""
        raise NotImplementedError

    @property
    def apply_config(self) -> str:
        """Make the manager read a changed service config."""
        raise NotImplementedError

    def granted(self) -> list[RootCommand]:
        """The root commands of these snippets a restricted deploy user is allowed (sudoers)."""
        raise NotImplementedError

    # --- snippets for `fab setup` (run as root) ---

    @property
    def setup_enable(self) -> str:
        """The manager itself enabled and running."""
        return ":"

    @property
    def setup_apply(self) -> str:
        """After the service config was installed."""
        raise NotImplementedError
