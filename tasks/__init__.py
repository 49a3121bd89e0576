"""The fab CLI: thin tasks over the wsgiship engine."""

from invoke import Collection

from .deploy import deploy
from .releases import releases, rollback, unlock

ns = Collection(deploy, rollback, releases, unlock)
ns.configure({"run": {"encoding": "utf-8", "in_stream": False}})
