"""The layering of effseg, checked on the source (every import, nested ones included).

In one line: leaf utilities (_version, _native, _triton, _timing, _parity, _labels, info)
and the torch-free runtime -> ops -> nn -> models, losses, metrics -> passes -> compile,
export, data -> train, predict -> bench, cli. A module imports from its own subpackage or
a lower layer; inside one layer only the pairs in SIDEWAYS, so no two subpackages import
each other (the leaf modules may use one another). The runtime imports nothing torch-based.
"""
import ast
from pathlib import Path

import pytest

import effseg

LAYERS = [
    {"_version", "_native", "_triton", "_timing", "_parity", "_labels", "_C", "info", "runtime"},
    {"ops"},
    {"nn"},
    {"models", "losses", "metrics"},
    {"passes"},
    {"compile", "export", "data"},
    {"train", "predict"},
    {"bench", "cli"},
]
# Allowed imports between subpackages of one layer (never both directions).
SIDEWAYS = {("compile", "export"), ("cli", "bench")}
# effseg._C is pybind11 over raw buffers (no libtorch): the runtime may call it.
TORCH_FREE = {"runtime": {"_version", "_C"}}
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(parts: list[str]) -> str:
    """The layer unit of a module path below effseg: its subpackage or leaf module."""
    return parts[0] if parts else "__init__"


def import_edges(root: Path) -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, 'file:line') for every import of effseg code."""
    edges = []
    for f in sorted(root.rglob("*.py")):
        rel = list(f.relative_to(root).with_suffix("").parts)
        pkg = rel[:-1]  # the package a relative import starts from
        if rel[-1] == "__init__":
            rel = rel[:-1]
        src = _unit(rel)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg[:len(pkg) - (node.level - 1)]
                    full = base + (node.module.split(".") if node.module else [])
                elif node.module and node.module.split(".")[0] == "effseg":
                    full = node.module.split(".")[1:]
                else:
                    continue
                targets = [full[0]] if full else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names
                           if a.name.startswith("effseg.")]
            else:
                continue
            edges += [(src, t, f"{f.relative_to(root.parent)}:{node.lineno}")
                      for t in targets if t != src]
    return edges


def violations(edges) -> list[str]:
    out = []
    pairs = {(a, b) for a, b, _ in edges}
    for a, b, where in edges:
        if a == "__init__":
            continue  # the package's public face imports everything on purpose
        if a not in RANK or b not in RANK:
            out.append(f"{where}: {a} -> {b}: a unit with no layer (add it to LAYERS)")
        elif a in TORCH_FREE and b not in TORCH_FREE[a]:
            out.append(f"{where}: the torch-free {a} imports {b}")
        elif RANK[b] > RANK[a]:
            out.append(f"{where}: {a} imports {b}, a higher layer")
        elif RANK[b] == RANK[a] > 0 and (a, b) not in SIDEWAYS:
            out.append(f"{where}: {a} imports {b} in its own layer"
                       + (" (a cycle)" if (b, a) in pairs else ""))
    return out


def test_effseg_respects_its_layers():
    root = Path(effseg.__file__).parent
    edges = import_edges(root)
    assert len(edges) > 50, "the import scan found almost nothing: the checker is broken"
    assert violations(edges) == []


@pytest.mark.parametrize(("edge", "why"), [
    (("compile", "bench", "x.py:1"), "higher layer"),
    (("export", "compile", "x.py:2"), "own layer"),
    (("metrics", "losses", "x.py:3"), "own layer"),
    (("runtime", "_parity", "x.py:4"), "torch-free"),
    (("ops", "shiny", "x.py:5"), "no layer"),
])
def test_checker_catches_each_kind(edge, why):
    assert any(why in v for v in violations([edge]))


def test_checker_names_a_cycle():
    found = violations([("losses", "metrics", "a.py:1"), ("metrics", "losses", "b.py:1")])
    assert len(found) == 2 and all("cycle" in v for v in found)


def test_scan_sees_nested_and_absolute_imports(tmp_path):
    pkg = tmp_path / "effseg"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "ops" / "a.py").write_text("def f():\n    from ..bench import x\n    import effseg.cli\n")
    assert {(a, b) for a, b, _ in import_edges(pkg)} == {("ops", "bench"), ("ops", "cli")}
