"""The operations, one module each, each written as its named stages:
deploy, rollback, setup, and state (releases, unlock)."""

from .deploy import Deploy
from .publish import site_url
from .rollback import Rollback
from .setup import Setup
from .state import force_unlock, read_state, releases

__all__ = ["Deploy", "Rollback", "Setup", "force_unlock", "read_state", "releases", "site_url"]
