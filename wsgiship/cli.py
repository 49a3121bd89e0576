"""The `wsgiship` command: `wsgiship init [PATH]` and `wsgiship --version`. A thin layer over
wsgiship.init (the deploy itself is fab's: fab setup, fab deploy...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import WsgishipError
from .init import init_app


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="wsgiship", description="Ship Python WSGI apps to Linux servers over SSH.",
        epilog="Deploys are fab tasks: fab setup -H HOST, fab deploy -H HOST (see fab --list).")
    top.add_argument("--version", action="version", version=f"wsgiship {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    init = commands.add_parser(
        "init", help="write fabfile.py and hosts.yaml for the app in PATH",
        description="Write fabfile.py and a commented hosts.yaml for the app in PATH (default: "
                    "here), from what its files say; an existing file is left as is.")
    init.add_argument("path", nargs="?", default=".", metavar="PATH",
                      help="the app's directory (default: the current one)")
    init.add_argument("--host", default="", metavar="[USER@]HOST[:PORT]",
                      help="the server to deploy to (default: a placeholder, web1.example.com)")
    init.add_argument("--name", default="", help="the app's name (default: pyproject.toml's "
                                                 "project name, else the directory's)")
    init.add_argument("--server-name", default="", metavar="NAMES",
                      help="the domain names nginx answers to, e.g. 'example.com "
                           "www.example.com' (default: localhost, a placeholder)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "init":
        parser().print_help()
        return 2
    try:
        report = init_app(args.path, host=args.host, name=args.name,
                          server_name=args.server_name)
    except WsgishipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print("\n".join(report.lines()))
    if report.problem:
        print(f"error: {report.problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
