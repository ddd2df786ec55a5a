"""The package's architecture, checked: imports only go downwards through the layers, and there are no cycles.

Layers (README, "Layout"): errors -> config, distances -> metrics, images -> embedders -> storage ->
retrieval, analysis, indexing, auth -> cli, dashboard. A module may import its own layer or lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

LAYERS = [
    ("cbir.errors",),
    ("cbir.config", "cbir.distances"),
    ("cbir.metrics", "cbir.images", "cbir.photo_metadata"),
    ("cbir.embedders",),
    ("cbir.storage",),
    ("cbir.retrieval", "cbir.analysis", "cbir.indexing", "cbir.auth"),
    ("cbir.cli", "cbir.dashboard", "cbir.__main__"),
]


def layer(module: str) -> int:
    for n, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return n
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the README's layout")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every cbir module -> the cbir modules it imports (at any depth in its code)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "cbir").rglob("*.py")):
        name = module_name(path)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cbir"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cbir")}
        graph[name] = found
    known = set(graph)
    return {name: {m for m in found if m in known and m != name} for name, found in graph.items()}


def test_every_module_imports_only_its_own_layer_or_lower() -> None:
    wrong = [
        f"{name} (layer {layer(name)}) imports {other} (layer {layer(other)})"
        for name, found in imports().items()
        if name != "cbir"  # the package's lazy public API names every layer on purpose
        for other in found
        if other != "cbir" and layer(other) > layer(name)
    ]
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_cycles() -> None:
    graph = {name: found - {"cbir"} for name, found in imports().items() if name != "cbir"}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(name) :] + [name]))
        if name in done:
            return
        for other in graph.get(name, ()):
            # a package imports its submodules through "from cbir.x import y": not a cycle of modules
            if not other.startswith(name + "."):
                visit(other, path + [name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_sql_lives_in_the_storage_layer() -> None:
    """No module outside cbir/storage runs SQL (pages, CLI, analysis and retrieval call storage functions)."""
    offenders = []
    for path in sorted((ROOT / "cbir").rglob("*.py")):
        if "storage" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "execute":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
