"""The layout's rules, read from the source: imports go one way, privates stay private.

Every ``jaxpm`` module's imports are read with :mod:`ast`, those inside functions too
(a lazy import is still a dependency). An edge ``a -> b`` means module ``a`` imports
module ``b``; importing ``pkg.mod`` also runs ``pkg/__init__``, so it adds an edge to
each package above ``b`` that ``a`` is not inside itself. The rules:

- no import cycle;
- no module imports a private name (``_x``) of another module;
- the core, ``jaxpm.ops``, imports nothing of ours but the pure-JAX helpers it stands on
  (``jaxpm.autodiff``), which import nothing of ours;
- experiments never import sampling, the runner, the many-run commands or the CLI;
- nothing imports ``jaxpm.cli``;
- no module is longer than 800 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "jaxpm"
MAX_LINES = 800


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every jaxpm import in ``name``."""
    return _imports_in(MODULES[name].read_text(), name, _is_package(name))


def _imports_in(source: str, name: str, is_package: bool = False) -> list[tuple[str, str | None, int]]:
    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "jaxpm"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.split(".")[0] != "jaxpm":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if sub in MODULES:  # `from pkg import module`
                    found.append((sub, None, node.lineno))
                else:
                    found.append((module, alias.name, node.lineno))
    return found


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for a in MODULES:
        for b, _, _ in _imports(a):
            if b not in MODULES:
                continue
            targets = {b}
            parts = b.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                inside = a == parent or a.startswith(parent + ".")
                if parent in MODULES and not inside:
                    targets.add(parent)
            graph[a] |= targets - {a}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_reader_sees_the_package():
    assert {"jaxpm.ops", "jaxpm.cli", "jaxpm.sampling.driver", "jaxpm.experiments.ode.experiment"} <= set(MODULES)
    # imports inside functions count, relative ones are resolved, `from pkg import module` is the module
    source = "def g():\n    from jaxpm.ops import jax_op\n    from . import errors\n    from .experiments import ode\n"
    assert _imports_in(source, "jaxpm.probe") == [
        ("jaxpm.ops", "jax_op", 2), ("jaxpm.errors", None, 3), ("jaxpm.experiments.ode", None, 4)
    ]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_edges()) == []


def test_no_private_names_across_modules():
    offences = [
        f"{a}:{line} imports {b}.{n}"
        for a in MODULES
        for b, n, line in _imports(a)
        if (n is not None and n.startswith("_")) or any(part.startswith("_") for part in b.split(".")[1:])
    ]
    assert offences == []


def test_the_core_imports_nothing_of_ours():
    assert {b for b, _, _ in _imports("jaxpm.ops")} == {"jaxpm.autodiff"}
    assert [b for b, _, _ in _imports("jaxpm.autodiff")] == []


@pytest.mark.parametrize("forbidden", ["jaxpm.sampling", "jaxpm.runner", "jaxpm.cli", "jaxpm.many", "jaxpm.prepare"])
def test_experiments_import_neither_sampling_nor_the_commands(forbidden):
    graph = _edges()
    for a in (m for m in MODULES if m.startswith("jaxpm.experiments")):
        assert not any(b == forbidden or b.startswith(forbidden + ".") for b in graph[a]), (a, forbidden)


def test_nothing_imports_the_cli():
    graph = _edges()
    assert [a for a in MODULES if "jaxpm.cli" in graph[a]] == []


def test_no_module_over_800_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
