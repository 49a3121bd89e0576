"""wsgiship: ship Python WSGI apps to Linux servers over SSH."""

__version__ = "0.1.0"
