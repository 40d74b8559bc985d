"""The packages' layering runs one way: no import cycles between modules (imports inside functions included), the
model imports nothing from export/, and nothing in hw_models/ reaches into the trainer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("neuromorph", "hw_models", "export")


def module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports anywhere in its source (top level or inside functions)."""
    files = {(f"{p}.{f.stem}" if f.stem != "__init__" else p): f for p in PACKAGES for f in (ROOT / p).glob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {m for m in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if m in files}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in files}
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    graph = module_graph()
    assert len(graph) > 30 and graph["neuromorph.models"]  # the graph really was read
    assert cycles(graph) == []


def test_the_model_imports_nothing_from_export():
    graph = module_graph()
    for module in ("neuromorph.spec", "neuromorph.structure", "neuromorph.outputs", "neuromorph.models"):
        assert not {m for m in graph[module] if m.startswith("export")}, module


PRICING = {"hw_models.energy", "hw_models.profiles", "hw_models.mapping", "hw_models.energy_report",
           "hw_models.energy_command"}


def test_training_imports_neither_pricing_nor_export():
    """The energy penalty and the Loihi-exact arithmetic come from above by name (neuromorph.penalties,
    neuromorph.models.ARITHMETIC_PROVIDERS), so no neuromorph module imports them."""
    graph = module_graph()
    for module in (m for m in graph if m.startswith("neuromorph")):
        assert not graph[module] & PRICING, (module, graph[module] & PRICING)
        assert not {m for m in graph[module] if m.startswith("export")}, module


def test_hw_models_does_not_reach_into_the_trainer_and_counting_sits_below_pricing():
    graph = module_graph()
    for module in (m for m in graph if m.startswith("hw_models")):
        assert "neuromorph.training" not in graph[module], module
    pricing = PRICING
    for module in ("hw_models.fanout", "hw_models.opcount", "hw_models.activity"):
        assert not graph[module] & pricing, module
        assert not {m for m in graph[module] if m.startswith("export")}, module
