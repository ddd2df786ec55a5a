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


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` as text; None for anything that is not a chain of names."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def private_uses(path: Path, known: set[str]) -> list[str]:
    """Another cbir module's private names that this file uses: `from cbir.x import _y`, or `x._y` on a module."""
    name, tree = module_name(path), ast.parse(path.read_text())
    bound: dict[str, str] = {}  # local name -> the cbir module or name it stands for
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {a.asname: a.name for a in node.names if a.asname and a.name.startswith("cbir")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cbir"):
            for a in node.names:
                bound[a.asname or a.name] = f"{node.module}.{a.name}"
                if is_private(a.name) and node.module != name:
                    uses.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and (chain := dotted(node.value)):
            head, _, rest = chain.partition(".")
            module = ".".join(filter(None, [bound.get(head, head), rest]))
            if module in known and module != name:
                uses.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {module}.{node.attr}")
    return uses


def test_no_module_uses_another_modules_private_names() -> None:
    """A leading underscore means "this module's own": another module reaching for it couples the two silently."""
    known = set(imports())
    uses = [u for path in sorted((ROOT / "cbir").rglob("*.py")) for u in private_uses(path, known)]
    assert not uses, "\n".join(uses)
