"""No import circles: statically (every import, module-level or inside a function, of the project's packages)
and dynamically (every module of harness/ imports in a fresh interpreter, in sorted and in reversed order)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "trainers", "reports")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = {name: path for p in PACKAGES for name, path in _modules(p).items()}


def _imports(name: str, path: Path) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (function-local imports included: they hide circles)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # "from harness import registry" names a module; "harness.x.f" a function
                t = t.rpartition(".")[0]
            if t and t != name and not (name.startswith(t + ".") or t == name.rpartition(".")[0]):  # a package's own parents
                found.add(t)
    return found


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        for t in _imports(name, path):
            g.add_edge(name, t)
    return g


def test_the_static_import_graph_has_no_cycle():
    g = import_graph()
    assert g.number_of_edges() > 150  # the graph is really read (a parsing slip would make the test vacuous)
    assert g.has_edge("harness.evals.winrate", "harness.registry") and g.has_edge("harness.stages", "trainers.sft")
    cycles = list(nx.simple_cycles(g))
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:10])


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_harness_module_imports_in_a_fresh_interpreter(order):
    names = sorted(n for n in MODULES if n.startswith("harness") and "tasks" not in n)
    if order == "reversed":
        names.reverse()
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\nprint('ok', len(sys.argv) - 1)"
    proc = subprocess.run([sys.executable, "-c", code, *names], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"ok {len(names)}"
