"""The hosts.yaml text `wsgiship init` writes: every value from the Plan, each with the reason it
was guessed beside it, and what to change or uncomment as comments."""

from __future__ import annotations

import json
import textwrap

import yaml

from .plan import CHANGE_ME, Plan

COMMENT_COLUMN = 34
WIDTH = 100
FABFILE = ('"""This app\'s deploy tasks: wsgiship\'s (fab --list shows them)."""\n\n'
           "from wsgiship.tasks import ns  # noqa: F401\n")


def scalar(value: str) -> str:
    """A YAML scalar for `value`: plain when it reads back the same, else double-quoted."""
    try:
        if value.strip() == value and yaml.safe_load(f"k: {value}") == {"k": value} \
                and "#" not in value and not value.startswith(("{", "[", "'", '"', "*", "&")):
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value)


def flow(items: list[str]) -> str:
    return "[" + ", ".join(scalar(i) for i in items) + "]"


def flow_map(items: dict[str, str]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in items.items()) + "}"


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, indent: int, text: str) -> None:
        pad = " " * indent
        for line in textwrap.wrap(text, WIDTH - indent - 2, break_on_hyphens=False):
            self.lines.append(f"{pad}# {line}")

    def raw(self, indent: int, text: str) -> None:
        self.lines.append(" " * indent + text)

    def entry(self, indent: int, text: str, comment: str = "", above: list[str] | None = None) -> None:
        """`text` (a key and its value) with `comment` beside it (above it when too long)."""
        for note in above or ():
            self.comment(indent, note)
        line = " " * indent + text
        if comment:
            beside = f"{line:<{COMMENT_COLUMN}}# {comment}" if len(line) < COMMENT_COLUMN \
                else f"{line}  # {comment}"
            if len(beside) <= WIDTH:
                self.lines.append(beside)
                return
            self.comment(indent, comment)
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def hosts_yaml(plan: Plan) -> str:
    out = Lines()
    out.comment(0, f"The inventory of {plan.name}: the app's settings, then the hosts it goes to "
                   f"(written by wsgiship init: check each guess; every key is in wsgiship's "
                   f"README, hosts.yaml reference).")
    out.raw(0, "app:")
    _app_head(out, plan)
    _app_files(out, plan)
    _health(out, plan)
    for block in plan.blocks:
        out.raw(0, "")
        out.comment(2, block[0])
        for line in block[1:]:
            out.raw(2, f"# {line}")
    _hooks(out, plan)
    out.raw(0, "")
    out.raw(0, "hosts:")
    _host(out, plan)
    return out.text()


def _app_head(out: Lines, plan: Plan) -> None:
    out.entry(2, f"name: {scalar(plan.name)}", plan.why("name"))
    out.entry(2, "source: .", "this directory; as a git work tree, its HEAD is shipped"
              if plan.git else "this directory (relative to this file)")
    above = [] if plan.wsgi != CHANGE_ME else [
        "CHANGE_ME: no WSGI callable was found. Set module:callable (e.g. shop:app), or "
        "module:create_app() for a factory."]
    out.entry(2, f"wsgi: {scalar(plan.wsgi)}", plan.why("wsgi"), above)
    above = ([f"{plan.framework}: ALLOWED_HOSTS must include these names."]
             if plan.framework == "Django" else [])
    out.entry(2, f"server_name: {scalar(plan.server_name)}", plan.why("server_name"), above)
    requirements = next((g for g in plan.guesses if g.key == "requirements"), None)
    if requirements is not None:
        what = plan.requirements or "none"
        out.comment(2, f"Requirements: {what} ({requirements.why}); the app itself is not "
                       f"pip-installed, it runs from the release directory.")
    python = plan.why("python")
    if python:
        version = next(g.value for g in plan.guesses if g.key == "python")
        out.comment(2, f"Python {version} ({python.split(';')[0]}): the venv is made by the "
                       f"server's python3 (python: python3.12 picks another).")


def _app_files(out: Lines, plan: Plan) -> None:
    if plan.src_layout:
        out.comment(2, "src/ layout: the app itself is not pip-installed, so src/ goes on the "
                       "import path of uWSGI (pythonpath) and of the hooks and fab exec "
                       "(PYTHONPATH). Where wsgiship has the install key, `install: project` "
                       "pip-installs the app into the venv instead of these two lines:")
        out.raw(2, "# install: project")
        out.raw(2, "uwsgi: {pythonpath: src}")
        out.raw(2, "env: {PYTHONPATH: src}")
    if plan.static:
        out.entry(2, f"static: {flow_map(plan.static)}", plan.why("static"))
    if plan.shared_dirs:
        whys = [f"{g.value}: {g.why}" for g in plan.guesses if g.key == "shared_dirs"]
        out.entry(2, f"shared_dirs: {flow(plan.shared_dirs)}",
                  above=["Linked into every release from shared/, the app's to write: " +
                         "; ".join(whys) + "."])


def _health(out: Lines, plan: Plan) -> None:
    out.raw(2, "health:")
    out.entry(4, f"path: {scalar(plan.health_path)}", plan.why("health.path"),
              plan.notes.get("health"))


def _hooks(out: Lines, plan: Plan) -> None:
    active = [h for h in plan.before_switch if not h.off]
    example = (["first_deploy runs once, when the host has no release yet (e.g. to create the "
                "database):", f"  first_deploy: [{json.dumps(plan.first_deploy)}]"]
               if plan.first_deploy else [])
    if active:
        out.raw(2, "hooks:")
        out.comment(4, "run in the new release, as the app, before it goes live:")
        out.raw(4, "before_switch:")
        for hook in plan.before_switch:
            if hook.off:
                out.raw(6, f"# - {hook.command}")
                out.comment(8, f"(off: {hook.off})")
            else:
                out.raw(6, f"- {scalar(hook.command)}")
        if example:
            out.comment(4, example[0])
            out.raw(4, f"# {example[1].strip()}")
        return
    lines = ["hooks:"]
    if plan.blocks and (plan.before_switch or example):
        out.raw(0, "")
    if plan.before_switch:
        lines += ["  before_switch:", *(f"    - {h.command}" for h in plan.before_switch)]
        out.comment(2, "Off: " + "; ".join(h.off for h in plan.before_switch) + ".")
    if example:
        out.comment(2, example[0])
        lines.append(example[1])
    for line in lines if len(lines) > 1 else ():
        out.raw(2, f"# {line}")


def _host(out: Lines, plan: Plan) -> None:
    h = plan.host
    out.entry(2, f"{h.alias}:", "from --host" if h.given else "a placeholder: change it to your "
                                                              "server")
    out.entry(4, f"host: {scalar(h.host)}", "" if h.given else "CHANGE ME: your server's name "
                                                               "or address")
    out.entry(4, f"user: {scalar(h.user)}", "" if h.given else "the login of deploys (fab "
                                                               "setup, as root, creates it)")
    if h.port:
        out.entry(4, f"port: {h.port}")
