"""Reading an app's directory without running any of it: its Python modules (parsed, never
imported), pyproject.toml, and the small facts every detector needs."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..source import EXCLUDED_DIRS

# Not where an app lives: tests, docs, build output, migrations, vendored environments.
SKIP_DIRS = EXCLUDED_DIRS | {"tests", "test", "testing", "docs", "doc", "build", "dist",
                             "migrations", "site-packages", "static", "templates", "instance"}
SKIP_FILES = {"setup.py", "conftest.py", "fabfile.py", "manage.py", "noxfile.py"}
# Module names tried first, in this order (then the others, by name).
PREFERRED = ("wsgi", "app", "application", "main", "server", "web", "api")
MAX_BYTES = 1_000_000


def read_text(path: Path) -> str:
    """A text file's content ("" when it cannot be read or is too big to be source)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


@dataclass(frozen=True)
class Module:
    """A Python module of the app: its import name, file, and the sys.path entry it needs."""

    name: str
    path: Path
    base: Path          # the directory its top package sits in (the app's root, or src/)

    @cached_property
    def text(self) -> str:
        return read_text(self.path)

    @cached_property
    def tree(self) -> ast.Module | None:
        return parse(self.text)

    @property
    def folder(self) -> Path:
        """The module's own directory (a package's, for its __init__.py)."""
        return self.path.parent

    @property
    def top(self) -> str:
        return self.name.split(".")[0]

    def rank(self) -> tuple[int, int, str]:
        last = self.name.split(".")[-1]
        preferred = PREFERRED.index(last) if last in PREFERRED else len(PREFERRED)
        return (self.name.count("."), preferred, self.name)


def _is_module_name(name: str) -> bool:
    return name.isidentifier() and not name.startswith(("test_", "_")) \
        and not name.endswith("_test")


def modules(root: Path) -> list[Module]:
    """The app's modules: top-level modules and packages (and their direct submodules), at the
    root and under src/, the most likely app module first."""
    found: list[Module] = []
    bases = [root] + ([root / "src"] if (root / "src").is_dir() else [])
    for base in bases:
        for entry in _entries(base):
            if entry.is_file() and entry.suffix == ".py" and entry.name not in SKIP_FILES \
                    and _is_module_name(entry.stem):
                found.append(Module(entry.stem, entry, base))
            elif entry.is_dir() and entry.name not in SKIP_DIRS and _is_module_name(entry.name) \
                    and (entry / "__init__.py").is_file():
                found.append(Module(entry.name, entry / "__init__.py", base))
                found.extend(Module(f"{entry.name}.{sub.stem}", sub, base)
                             for sub in _entries(entry)
                             if sub.is_file() and sub.suffix == ".py" and _is_module_name(sub.stem))
    return sorted(found, key=Module.rank)


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError:
        return []


def pyproject(root: Path) -> dict[str, Any]:
    """pyproject.toml's content ({} when there is none or it cannot be parsed)."""
    text = read_text(root / "pyproject.toml")
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}


def has_python(root: Path) -> bool:
    """Anything of a Python app here: a module, manage.py, requirements.txt or pyproject.toml."""
    return any((root / n).is_file() for n in ("manage.py", "requirements.txt", "pyproject.toml")) \
        or bool(modules(root))


# --- AST helpers ---


def imports_module(tree: ast.Module, module: str) -> bool:
    """The module imports `module` (or something from it), anywhere in its code."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                a.name == module or a.name.startswith(module + ".") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == module or node.module.startswith(module + ".")):
            return True
    return False


def call_name(node: ast.AST) -> str:
    """The name a call is made through: `Flask` for Flask(...) and flask.Flask(...)."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return ""


def top_assignments(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """`NAME = value` statements at the module's top level, in order."""
    out: list[tuple[str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            out.extend((t.id, node.value) for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            out.append((node.target.id, node.value))
    return out


def top_names(tree: ast.Module) -> set[str]:
    """Every name the module binds at its top level: assignments, functions, classes, imports."""
    names = {name for name, _ in top_assignments(tree)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def top_function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def constant(node: ast.AST | None) -> Any:
    """A literal's value; None for anything else."""
    try:
        return ast.literal_eval(node) if node is not None else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def relative(path: Path, root: Path) -> str | None:
    """`path` as a POSIX path relative to the app's root; None when it lies outside it."""
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return None
    return rel
