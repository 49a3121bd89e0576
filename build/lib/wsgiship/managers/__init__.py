"""Service managers that run the app's uWSGI: one module each, behind one small interface.

A new manager is one module here (a ServiceManager subclass registered in MANAGERS) and one
template (`templates/<its template>`); hosts.yaml's `service_manager` picks it by name.
"""

from __future__ import annotations

from .base import SLOTS, ServiceManager
from .supervisor import Supervisor
from .systemd import Systemd

MANAGERS: dict[str, type[ServiceManager]] = {m.name: m for m in (Systemd, Supervisor)}


def names() -> tuple[str, ...]:
    return tuple(MANAGERS)


def get(kind: str, service: str = "") -> ServiceManager:
    """The manager called `kind`, for the service (unit or program) named `service`."""
    try:
        return MANAGERS[kind](service)
    except KeyError:
        raise ValueError(f"unknown service manager {kind!r} (known: {', '.join(MANAGERS)})") from None


__all__ = ["MANAGERS", "SLOTS", "ServiceManager", "get", "names"]
