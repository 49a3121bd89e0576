"""A Django settings module read as text: the few settings init needs, evaluated from their
source (BASE_DIR / "staticfiles", os.path.join(BASE_DIR, ...)), never by importing it."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scan import constant, parse, read_text

MAX_DEPTH = 4  # star imports followed (from .base import *)


@dataclass
class Settings:
    """What the settings module says; a value that could not be read is None."""

    files: list[Path] = field(default_factory=list)    # the module, then what it star-imports
    values: dict[str, Any] = field(default_factory=dict)  # literals and evaluated paths
    nodes: dict[str, ast.AST] = field(default_factory=dict)  # every top-level assignment
    lines: dict[str, tuple[Path, int]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.nodes

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def where(self, name: str, root: Path) -> str:
        path, line = self.lines[name]
        return f"{_rel(path, root)}:{line}"

    @property
    def text(self) -> str:
        return "\n".join(read_text(p) for p in self.files)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def module_file(root: Path, module: str) -> Path | None:
    """The file of a dotted module under root: a/b.py, or a/b/__init__.py."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def read_settings(root: Path, module: str) -> Settings | None:
    path = module_file(root, module)
    if path is None:
        return None
    settings = Settings()
    _read(root, module, path, settings, 0)
    return settings


def _read(root: Path, module: str, path: Path, settings: Settings, depth: int) -> None:
    tree = parse(read_text(path))
    settings.files.append(path)
    if tree is None:
        return
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names) \
                and depth < MAX_DEPTH:
            target = _resolve(package, node)
            target_path = module_file(root, target) if target else None
            if target_path is not None and target_path not in settings.files:
                _read(root, target, target_path, settings, depth + 1)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    _assign(settings, target.id, node.value, path, node.lineno)


def _resolve(package: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    if node.level > 1:
        parts = parts[:len(parts) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _assign(settings: Settings, name: str, value: ast.AST, path: Path, line: int) -> None:
    settings.nodes[name] = value
    settings.lines[name] = (path, line)
    literal = constant(value)
    if literal is not None:
        settings.values[name] = literal
        return
    evaluated = PathEval(path, settings.values).eval(value)
    if evaluated is not None:
        settings.values[name] = evaluated
    else:
        settings.values.pop(name, None)  # no longer known


class PathEval:
    """Evaluates the path expressions settings files use: Path(__file__).resolve().parent,
    BASE_DIR / "x", os.path.join(BASE_DIR, "x"), os.path.dirname(...), str(...), and names
    already known. Anything else is None (not known)."""

    def __init__(self, file: Path, names: dict[str, Any]) -> None:
        self.file, self.names = file, names

    def eval(self, node: ast.AST) -> Path | str | None:
        try:
            return self._eval(node)
        except (TypeError, ValueError, IndexError, RecursionError):
            return None

    def _eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.file if node.id == "__file__" else self._known(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self._eval(node.left), self._eval(node.right)
            return Path(left) / right if isinstance(left, Path) and right is not None else None
        if isinstance(node, ast.Attribute):
            value = self._eval(node.value)
            if node.attr == "parent" and value is not None:
                return Path(value).parent
            return None
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        return None

    def _known(self, name: str) -> Any:
        value = self.names.get(name)
        return value if isinstance(value, Path | str) else None

    def _subscript(self, node: ast.Subscript) -> Any:
        # Path(__file__).resolve().parents[1]
        if isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
            base, index = self._eval(node.value.value), constant(node.slice)
            if base is not None and isinstance(index, int):
                return Path(base).parents[index]
        return None

    def _call(self, node: ast.Call) -> Any:
        func, args = node.func, [self._eval(a) for a in node.args]
        if any(a is None for a in args) or node.keywords:
            return None
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if isinstance(func, ast.Attribute) and name in ("resolve", "absolute", "joinpath"):
            base = self._eval(func.value)
            if not isinstance(base, Path):
                return None
            return base.joinpath(*args) if name == "joinpath" else base
        if name == "Path" and args:
            return Path(*args)
        if name == "join" and args:     # os.path.join
            return Path(args[0]).joinpath(*args[1:])
        if name == "dirname" and len(args) == 1:
            return Path(args[0]).parent
        if name in ("abspath", "realpath", "str", "normpath") and len(args) == 1:
            return Path(args[0]) if isinstance(args[0], Path) else args[0]
        return None


def as_path(value: Any, settings_file: Path) -> Path | None:
    """A path setting's value as an absolute Path (a relative one is relative to the cwd, the
    release: uWSGI and the hooks run there)."""
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value)
    return None
