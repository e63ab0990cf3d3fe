#!/usr/bin/env python3
"""Print which top-level module of src/ uses which (from `crate::X` paths outside tests),
and fail if the graph has a cycle or a module uses one above it in LAYERS.

    python3 scripts/dev/module-graph.py
"""
import pathlib
import re
import sys

# Bottom first; a module may use only modules in earlier entries (or its own).
LAYERS = [
    {"frame", "disk", "state"},
    {"source", "mux"},
    {"recorder"},
    {"storage"},
    {"service", "gpio", "web", "events"},
    {"config"},
    {"app"},
    {"cli"},
]

src = pathlib.Path(__file__).resolve().parents[2] / "src"
edges = {}
for path in src.rglob("*.rs"):
    rel = path.relative_to(src)
    top = rel.parts[0].removesuffix(".rs")
    if top in ("lib", "main", "fuzzing"):
        continue
    text = path.read_text()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    for m in re.finditer(r"crate::([a-z_]+)", text):
        dep = m.group(1)
        if dep != top:
            edges.setdefault(top, set()).add(dep)
    edges.setdefault(top, set())

level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
bad = []
for m in sorted(edges):
    deps = sorted(edges[m])
    print(f"{m:9} -> {', '.join(deps) if deps else '(nothing)'}")
    for d in deps:
        if level.get(d, 99) > level.get(m, 99):
            bad.append(f"{m} uses {d}, which is above it")

# cycles
state = {}
def visit(n, stack):
    state[n] = 1
    for d in edges.get(n, ()):
        if state.get(d) == 1:
            bad.append("cycle: " + " -> ".join(stack[stack.index(d):] + [d]) if d in stack else f"cycle via {d}")
        elif state.get(d) is None:
            visit(d, stack + [d])
    state[n] = 2
for n in sorted(edges):
    if n not in state:
        visit(n, [n])
if bad:
    print("\n".join(sorted(set(bad))))
    sys.exit(1)
print("no cycle; every module uses only modules below it")
