"""The packages depend one way (docs/architecture.md): read from every module's imports.

Lazy imports inside functions and ``TYPE_CHECKING`` blocks count too: a dependency that only
runs later is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "retriever", "glossary", "server", "evaluation", "training", "cli")

# What each package may import from the project, itself aside. The service is
# server → retriever → glossary → kernel (the retriever searches glossary snapshots); evaluation and training are offline clients of
# the service; cli is the composition root of the command-line tools.
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "retriever": {"kernel", "glossary"},
    "glossary": {"kernel"},
    "server": {"kernel", "retriever", "glossary"},
    "evaluation": {"kernel", "retriever", "glossary", "server"},
    "training": {"kernel", "retriever", "glossary", "server", "evaluation"},
    "cli": {"kernel", "retriever", "glossary", "server", "evaluation", "training"},
}


def _project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & set(PACKAGES)


def _graph() -> dict[str, dict[str, list[str]]]:
    graph: dict[str, dict[str, list[str]]] = {}
    for package in PACKAGES:
        edges: dict[str, list[str]] = defaultdict(list)
        for module in sorted((ROOT / package).rglob("*.py")):
            for target in _project_imports(module):
                if target != package:
                    edges[target].append(str(module.relative_to(ROOT)))
        graph[package] = edges
    return graph


def test_every_package_exists() -> None:
    # A renamed package would make the checks below vacuous.
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").is_file(), package
        assert any((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_run_one_way(package: str) -> None:
    edges = _graph()[package]
    forbidden = {
        target: modules for target, modules in edges.items() if target not in ALLOWED[package]
    }
    assert not forbidden, f"{package} imports {forbidden}; allowed: {sorted(ALLOWED[package])}"


def test_the_graph_has_no_cycles() -> None:
    graph = {package: set(edges) for package, edges in _graph().items()}
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in visiting, "import cycle: " + " → ".join([*path, node])
        if node in done:
            return
        visiting.add(node)
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        visiting.discard(node)
        done.add(node)

    for package in PACKAGES:
        visit(package, [])


def test_the_scanner_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from server.settings import Settings\n"
        "def f():\n    import training.cli\n    from . import sibling\n"
    )
    assert _project_imports(module) == {"server", "training"}


def test_long_modules_say_why() -> None:
    # docs/architecture.md: no module over ~400 lines without a reason written at its top.
    unexplained = []
    for package in PACKAGES:
        for module in (ROOT / package).rglob("*.py"):
            text = module.read_text(encoding="utf-8")
            if text.count("\n") > 420:
                docstring = ast.get_docstring(ast.parse(text)) or ""
                if "Why one module past 400 lines" not in docstring:
                    unexplained.append(str(module.relative_to(ROOT)))
    assert not unexplained, f"long modules without a reason at their top: {unexplained}"
