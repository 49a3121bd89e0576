"""This repository's fab tasks: those of the wsgiship package (an app's own fabfile.py imports
them the same way: `from wsgiship.tasks import ns`)."""

from wsgiship.tasks import ns  # noqa: F401
