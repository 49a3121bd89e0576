"""The fab CLI: thin tasks over the wsgiship engine."""

from invoke import Collection

from .deploy import deploy

ns = Collection(deploy)
ns.configure({"run": {"encoding": "utf-8", "in_stream": False}})
