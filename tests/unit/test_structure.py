"""The code's shape, checked: one concern per module, small files and functions, no import
cycle, the engine never imports the CLI, and the pure command builders pull in neither Jinja
nor SSH."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "wsgiship"
CLI = ENGINE / "tasks"  # the fab tasks: a thin CLI over the engine (the rest of the package)
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# builders that are mostly one literal shell script, allowed to be longer (none now: start_slot,
# retire and the watch's builder fit; an entry must name a function that exists)
LITERAL_SCRIPTS: set[tuple[str, str]] = set()


def sources() -> list[Path]:
    return sorted([*ENGINE.rglob("*.py"), *(ROOT / "tasks").rglob("*.py")])


def engine_sources() -> list[Path]:
    return [p for p in ENGINE.rglob("*.py") if CLI not in p.parents]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Imports(ast.NodeVisitor):
    def __init__(self, package: str) -> None:
        self.package, self.found = package, set[str]()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" not in ast.unparse(node.test):
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(a.name for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            up = self.package.split(".")[:len(self.package.split(".")) - node.level + 1]
            base = ".".join([*up, base] if base else up)
        self.found.add(base)
        self.found.update(f"{base}.{a.name}" for a in node.names)


def runtime_imports(path: Path) -> set[str]:
    """The wsgiship/tasks modules a module imports when it runs (not under TYPE_CHECKING)."""
    name = module_name(path)
    imports = _Imports(name if path.name == "__init__.py" else name.rpartition(".")[0])
    imports.visit(ast.parse(path.read_text(encoding="utf-8")))
    known = {module_name(p) for p in sources()}
    return {m for m in imports.found if m in known} - {name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): runtime_imports(p) for p in sources()}


def test_no_python_file_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert long == {}


def test_no_function_is_over_60_lines_but_literal_scripts() -> None:
    long = []
    for path in sources():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES and (rel, node.name) not in LITERAL_SCRIPTS:
                    long.append(f"{rel}:{node.lineno} {node.name} ({size} lines)")
    assert long == []


def test_the_literal_scripts_exempted_exist() -> None:
    defined = {(str(p.relative_to(ROOT)), node.name) for p in sources()
               for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert LITERAL_SCRIPTS - defined == set()


def test_the_import_graph_has_no_cycle() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                walk(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            walk(node, [node])
    assert cycles == []


def test_the_checker_sees_imports() -> None:
    g = graph()
    assert "wsgiship.layout" in g["wsgiship.commands.release"]
    assert "wsgiship.ops.deploy" in g["wsgiship.ops"]
    assert "wsgiship.config" not in g["wsgiship.layout"]  # only under TYPE_CHECKING


def test_the_engine_never_imports_the_cli() -> None:
    g = graph()
    assert {m: sorted(d) for m, d in g.items()
            if m.startswith("wsgiship") and not m.startswith("wsgiship.tasks")
            and any(x.startswith(("tasks", "wsgiship.tasks")) for x in d)} == {}


@pytest.mark.parametrize("module", sorted(
    module_name(p) for p in (ENGINE / "commands").glob("*.py")))
def test_command_builders_import_neither_jinja_nor_ssh(module: str) -> None:
    probe = (f"import sys; import {module}; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'jinja2', 'fabric', 'paramiko', 'invoke', 'yaml'}))")
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_only_the_remote_package_touches_ssh() -> None:
    touching = set()
    for path in engine_sources():
        text = path.read_text(encoding="utf-8")
        if any(word in text for word in ("import paramiko", "from fabric", "import fabric",
                                         "open_session(", "import invoke")):
            touching.add(str(path.relative_to(ENGINE).parent))
    assert touching == {"remote"}


def test_a_service_manager_is_one_module_and_one_template() -> None:
    from wsgiship import managers

    for name, cls in managers.MANAGERS.items():
        assert (ENGINE / "managers" / f"{name}.py").is_file()
        assert (ENGINE / "templates" / cls.template).is_file()
    # nowhere else names a manager: config, layout, render, ops and commands ask the registry
    for path in engine_sources():
        if path.parent.name == "managers":
            continue
        text = path.read_text(encoding="utf-8")
        assert '"supervisor"' not in text and "'supervisor'" not in text, path


def test_test_modules_have_unique_names() -> None:
    # pytest imports test files without packages by their base name: two alike break collection
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
