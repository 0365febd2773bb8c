"""No import circles in zdm, and no upward arrow: the graph of module-level imports has no
cycle, and no module imports one of a layer above its own (:data:`LAYERS`).

What counts is what runs when a module is imported: its imports at module level (not those
inside functions, nor those under ``if TYPE_CHECKING:``), and for an import of ``a.b.c`` the
``__init__`` of every package on the way that the importer is not itself inside (importing
``zdm.phases.state`` runs ``zdm/phases/__init__.py``). A cycle there is an import that works
or fails depending on which module happens to be imported first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zdm

ROOT = Path(zdm.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_time_imports(body: list[ast.stmt]):
    """The import statements that run when the module is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _run_time_imports(node.body)
            yield from _run_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _run_time_imports(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _run_time_imports(node.body)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = []
        for node in _run_time_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        mine = set(_ancestors(name))
        for target in targets:
            for hop in [*_ancestors(target), target]:
                if hop in modules and hop != name and hop not in mine and hop != "zdm":
                    graph[name].add(hop)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
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


def test_the_graph_sees_imports_and_the_packages_they_run():
    graph = import_graph()
    assert "zdm.state.store" in graph["zdm.state.file_store"]
    # zdm.state.file_store imports zdm.phases.errors, which runs zdm/phases/__init__.py
    assert {"zdm.phases", "zdm.phases.errors"} <= graph["zdm.state.file_store"]
    # an import under `if TYPE_CHECKING:` does not run
    assert "zdm.state.store" not in graph["zdm.phases.machine"]


def test_zdm_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


#: zdm's layers, bottom first: a module may import its own layer's and those below, never one
#: above.  A module belongs to the layer of the longest prefix naming it.
LAYERS = [
    ("base", ("zdm", "zdm.errors", "zdm.clock", "zdm.fsutil", "zdm.releases", "zdm.logs")),
    ("configuration", ("zdm.config", "zdm.scope")),
    ("protocol", ("zdm.cql",)),
    ("reaching clusters", ("zdm.clusters", "zdm.sandbox")),
    ("token ranges", ("zdm.ranges",)),
    ("phases", ("zdm.phases",)),
    ("persisted state, zdm-proxy's settings", ("zdm.state", "zdm.config.zdmproxy_table",
                                               "zdm.config.zdmproxy_read", "zdm.config.zdmproxy_translate",
                                               "zdm.config.zdmproxy_routing", "zdm.config.zdmproxy_render",
                                               "zdm.config.proxy_config")),
    ("copy", ("zdm.migrate",)),
    ("validation", ("zdm.validate",)),
    ("proxy", ("zdm.proxy",)),
    # above the proxy: it reuses the proxy's topology snapshot and choice of local DC
    ("preflight", ("zdm.preflight",)),
    # the console shows and moves what all of the above keep; only the commands sit above it
    ("console", ("zdm.console",)),
    ("commands", ("zdm.demo", "zdm.cli", "zdm.__main__")),
]


def layer_of(module: str) -> int:
    best, found = -1, None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), rank
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) -> {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not upward, "imports of a layer above:\n" + "\n".join(upward)
