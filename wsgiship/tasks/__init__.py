"""The fab CLI: thin tasks over the wsgiship engine."""

from invoke import Collection

from .deploy import deploy
from .env import env, put
from .exec import exec_
from .init import init
from .logs import logs
from .releases import releases, rollback, unlock
from .setup import setup

ns = Collection(deploy, rollback, releases, unlock, logs, exec_, env, put, setup, init)
ns.configure({"run": {"encoding": "utf-8", "in_stream": False}})
