"""The rooms of the package and what each may import (docs/architecture.md), read from the code.

Every ``import`` statement of every module of ``anderson_mpi`` and ``analysis`` (also those inside
functions) is parsed. A module may import modules of its own room (without cycles) and of the
rooms listed as below it; nothing else of the package. No module imports a private (``_name``)
from another module.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# room -> the rooms it may import (besides itself). Leaves first.
ALLOWED = {
    "errors": set(),
    "contracts": set(),
    "version": set(),
    "system": set(),
    "engines": {"system", "contracts", "errors"},
    "observables": {"system", "contracts", "errors"},
    "io": {"observables", "contracts", "errors", "version"},
    "run": {"io", "observables", "engines", "system", "contracts", "errors", "version"},
    "cli": {"run", "io", "observables", "engines", "system", "contracts", "errors", "version"},
    "facade": {"engines", "system", "version", "errors", "contracts"},
    "bench": {"run", "io", "observables", "engines", "system", "contracts", "errors", "version"},
    # the analysis reads result files through the schema and the observables' field catalogue
    "analysis": {"io.schema", "observables", "errors"},
}


def room_of(module):
    parts = module.split(".")
    if parts[0] == "analysis":
        return "analysis"
    if module == "anderson_mpi":
        return "facade"
    name = parts[1]
    return {"_version": "version", "__main__": "cli"}.get(name, name)


def modules():
    out = {}
    for package in ("anderson_mpi", "analysis"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(module, path, known):
    """(imported module, imported names) of every import statement, resolved to known modules."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, ()))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = tuple(alias.name for alias in node.names)
            # `from package import module` imports the module, not the package's own names
            submodules = [name for name in names if f"{target}.{name}" in known]
            found += [(f"{target}.{name}", ()) for name in submodules]
            rest = tuple(name for name in names if name not in submodules)
            if rest:
                found.append((target, rest))
    out = []
    for target, names in found:
        while target and target not in known:  # `a.b.c` -> the nearest known module
            target = target.rpartition(".")[0]
        if target:
            out.append((target, names))
    return out


KNOWN = modules()
GRAPH = {m: imports_of(m, p, KNOWN) for m, p in KNOWN.items()}


def allowed(module, target):
    src, dst = room_of(module), room_of(target)
    if src == dst:
        return True
    rooms = ALLOWED[src]
    if src == "analysis":
        return target == "anderson_mpi.io.schema" or dst in rooms - {"io.schema"}
    return dst in rooms


def test_every_module_has_a_room():
    for module in KNOWN:
        assert room_of(module) in ALLOWED, module


@pytest.mark.parametrize("module", sorted(KNOWN))
def test_imports_point_down(module):
    bad = [target for target, _ in GRAPH[module] if target != module and not allowed(module, target)]
    assert not bad, f"{module} ({room_of(module)}) imports {bad}"


@pytest.mark.parametrize("module", sorted(KNOWN))
def test_no_private_names_from_other_modules(module):
    bad = [(target, name) for target, names in GRAPH[module] for name in names
           if target != module and name.startswith("_") and not name.startswith("__")
           and f"{target}.{name}" not in KNOWN]
    assert not bad, f"{module} imports private names {bad}"


def test_no_import_cycles():
    graph = {m: {t for t, _ in edges if t != m} for m, edges in GRAPH.items()}
    # a package's __init__ and its own submodules are one unit of import order
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its submodules
                continue
            if node.startswith(nxt + "."):  # a submodule importing its package's facade
                continue
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checks above can fail: an engine importing the job executor is flagged."""
    fake = {"anderson_mpi.engines.transfer": None, "anderson_mpi.run.executor": None}
    src = tmp_path / "transfer.py"
    src.write_text("from ..run.executor import potential\n")
    edges = imports_of("anderson_mpi.engines.transfer", src, fake)
    assert ("anderson_mpi.run.executor", ("potential",)) in edges
    assert not allowed("anderson_mpi.engines.transfer", "anderson_mpi.run.executor")
