"""The package's structure, checked: imports point one way (``gpuqnn/_sim`` never imports
``gpuqnn/_cuda``), no import circle (function-level and ``TYPE_CHECKING`` imports count), no class
over 400 lines, and mypy clean with the project's configuration (``pyproject.toml``)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gpuqnn"
MAX_CLASS_LINES = 400


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {_module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of a ``from ... import`` node's module."""
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the gpuqnn modules it imports anywhere in its body (top level, inside
    functions, under ``TYPE_CHECKING``). ``from package import name`` counts as an import of
    ``package.name`` when that is a module, else of ``package``."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), a package's
    ``__init__`` importing its own submodules excepted (that is how a package exports)."""

    def counts(source: str, target: str) -> bool:
        return not target.startswith(source + ".")

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if not counts(node, target):
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import b\n"
    )
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def g():\n    from ..c import h\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert import_cycles({"p": {"p.x"}, "p.x": {"p"}}) == []


def test_no_import_circle() -> None:
    assert import_cycles(import_graph()) == []


def test_sim_imports_nothing_from_cuda() -> None:
    graph = import_graph()
    wrong = {
        module: sorted(t for t in targets if t.startswith("gpuqnn._cuda"))
        for module, targets in graph.items()
        if module.startswith("gpuqnn._sim")
    }
    assert {module: targets for module, targets in wrong.items() if targets} == {}


def test_compile_imports_neither_sim_nor_cuda() -> None:
    graph = import_graph()
    wrong = {
        module: sorted(t for t in targets if t.startswith(("gpuqnn._sim", "gpuqnn._cuda")))
        for module, targets in graph.items()
        if module.startswith("gpuqnn._compile")
    }
    assert {module: targets for module, targets in wrong.items() if targets} == {}


def test_no_class_over_400_lines() -> None:
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []


def test_mypy_is_clean() -> None:
    """``mypy gpuqnn`` with the configuration in pyproject.toml (strict on ``_sim`` and
    ``_compile``)."""
    from mypy import api  # noqa: PLC0415 - part of the test extra; slow to import

    root = PACKAGE.parent
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(root / "pyproject.toml"),
            "--cache-dir",
            str(root / ".mypy_cache"),
            str(PACKAGE),
        ]
    )
    assert status == 0, stdout + stderr
