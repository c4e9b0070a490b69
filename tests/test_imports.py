"""The import structure the architecture promises: no import circles among services' modules,
and the plan builder below the HTTP face (ruff's banned-api enforces its purity too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "services"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path, known: set[str]) -> set[str]:
    """Imports of other services modules, lazy ones inside functions included (a lazy import
    only hides a circle); those under TYPE_CHECKING are for the type checker only."""
    tree = ast.parse(path.read_text())
    for block in [
        n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    ]:
        block.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            # `from package import submodule` depends on the submodule; any other name on the module
            if len(submodules) < len(node.names) and node.module in known:
                found.add(node.module)
            found |= submodules
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    known = set(paths)
    return {m: _imports(p, known) - {m} for m, p in paths.items()}


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_plan_builder_never_imports_the_http_face() -> None:
    for module, imports in _graph().items():
        if module.startswith("services.plan_builder"):
            assert not {i for i in imports if i.startswith("services.cds_hooks")}, module
