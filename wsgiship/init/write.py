"""Writing fabfile.py and hosts.yaml into the app's directory (never over an existing file),
and the report of what was guessed, written and left."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..errors import ConfigError, InitError
from ..output import visible
from .plan import CHANGE_ME, Plan
from .render import FABFILE, hosts_yaml


@dataclass
class Report:
    plan: Plan
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    alias: str = ""

    @property
    def problem(self) -> str:
        """Why the app is not ready to deploy as written ("" when it is)."""
        if "hosts.yaml" in self.written and self.plan.wsgi == CHANGE_ME:
            return (f"no WSGI callable found in {self.plan.root}: hosts.yaml says wsgi: "
                    f"{CHANGE_ME}; set app.wsgi to module:callable (or module:create_app())")
        return ""

    def lines(self, cwd: Path | None = None) -> list[str]:
        plan = self.plan
        what = f"{plan.framework} app" if plan.framework else "app"
        out = [f"wsgiship init: {what} in {plan.root}"]
        out += [g.line() for g in plan.guesses]
        out += [f"wrote {name}" for name in self.written]
        out += [f"{name} exists, left as is" + (" (the guesses above are not in it)"
                                                 if name == "hosts.yaml" else "")
                for name in self.kept]
        out += [f"hint: {hint}" for hint in plan.hints]
        if "hosts.yaml" in self.written and not plan.host.given:
            out.append(f"hint: hosts.{plan.host.alias}.host in hosts.yaml is a placeholder: "
                       f"set your server's name first")
        if "fabfile.py" in self.kept and "wsgiship" not in _read(plan.root / "fabfile.py"):
            out.append("hint: fabfile.py does not load wsgiship's tasks: add "
                       "`from wsgiship.tasks import ns` to it")
        if plan.git:
            out.append("hint: a git work tree: a deploy ships its HEAD, so commit these files "
                       "and your changes first")
        here = (cwd or Path.cwd()).resolve()
        out.append("next:" if here == plan.root else f"next, in {plan.root}:")
        out += [f"  fab setup -H {self.alias}", f"  fab deploy -H {self.alias}"]
        return [visible(line) for line in out]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def write(plan: Plan) -> Report:
    """Write fabfile.py and hosts.yaml where they do not exist yet; report what was done."""
    report = Report(plan, alias=plan.host.alias)
    text = hosts_yaml(plan)
    check(text)
    for name, content in (("fabfile.py", FABFILE), ("hosts.yaml", text)):
        (report.written if write_new(plan.root / name, content) else report.kept).append(name)
    if "hosts.yaml" in report.kept:
        report.alias = existing_alias(plan.root / "hosts.yaml") or report.alias
    return report


def write_new(path: Path, text: str) -> bool:
    """Create `path` with `text`; False, touching nothing, when something is there already."""
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        return False
    except OSError as exc:
        raise InitError(f"{path}: cannot write: {exc.strerror}") from None
    return True


def check(text: str) -> None:
    """The text loads as wsgiship's hosts.yaml (as it will be read, beside the app)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hosts.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            config.load(path)
        except ConfigError as exc:
            raise InitError(f"the hosts.yaml made for this app does not load ({exc}); "
                            f"please report this") from None


def existing_alias(path: Path) -> str:
    """The first host alias of an existing hosts.yaml ("" when it does not load)."""
    try:
        inventory = config.load(path)
    except ConfigError:
        return ""
    return next(iter(inventory.hosts), "")
