"""The import picture of the project: floors, arrows running back up, circles, function-level imports.

Usage:
    python benchmarks/import_layers.py
Reads every module's imports (top-level and inside functions) with `ast`, groups modules into layers
(a layer is a top-level package: ground, data_processing, common, each experiment folder), and
prints: the layers' floors (longest import chain between layers), pairs of layers importing each other
(arrows back up), import circles between modules, imports hidden inside functions, the largest files.
tests/test_layers.py asserts the picture stays clean.
"""
import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

from ground.paths import REPO_ROOT

PACKAGES = ("ground", "common", "data_processing", "har_task", "HAR_centralized", "HAR_federated", "IR_centralized",
            "studies", "benchmarks", "data")
# the modules that read one dataset: common/ (the shared machinery) imports none of them
DATASET_MODULES = ("data_processing.har", "data_processing.hapt", "data_processing.recordings", "data_processing.stl10",
                   "data_processing.images", "har_task")

def module_files(repo=REPO_ROOT, packages=PACKAGES):
    """{module name: path} of the project's Python files."""
    files = {}
    for package in packages:
        for path in sorted((Path(repo) / package).rglob("*.py")):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def project_imports(path, modules):
    """[(imported module, inside a function?)] of one file, restricted to `modules`."""
    found = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # `from package import module` imports that module; `from module import name` the module
                names = [f"{child.module}.{alias.name}" if f"{child.module}.{alias.name}" in modules else child.module
                         for alias in child.names]
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name:
                    found.append((name, inner))
            visit(child, inner)

    visit(ast.parse(Path(path).read_text()), False)
    return found


def layer(module):
    return module.split(".")[0]


def strongly_connected(graph):
    """Tarjan's components of a {node: set(nodes)} graph, as a list of sets."""
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            connect(v)
    return components


def picture(repo=REPO_ROOT, packages=PACKAGES):
    files = module_files(repo, packages)
    modules = set(files)
    module_graph, hidden = defaultdict(set), []
    for module, path in files.items():
        for target, inside_function in project_imports(path, modules):
            if target != module and not module.startswith(target + "."):
                module_graph[module].add(target)
                if inside_function:
                    hidden.append((module, target))
    layer_graph = defaultdict(set)
    for module, targets in module_graph.items():
        for target in targets:
            if layer(module) != layer(target):
                layer_graph[layer(module)].add(layer(target))
    layers = {layer(m) for m in modules}
    for name in layers:
        layer_graph.setdefault(name, set())
    back_up = sorted({tuple(sorted((a, b))) for a in layer_graph for b in layer_graph[a] if a in layer_graph[b]})
    layer_circles = [c for c in strongly_connected(layer_graph) if len(c) > 1]
    module_circles = [sorted(c) for c in strongly_connected(dict(module_graph)) if len(c) > 1]
    # floors: longest chain of imports between layers, circles collapsed
    component_of = {n: i for i, c in enumerate(strongly_connected(layer_graph)) for n in c}
    floor = {}

    def floor_of(component):
        if component not in floor:
            below = {component_of[t] for n, c in component_of.items() if c == component for t in layer_graph[n]}
            floor[component] = 1 + max((floor_of(b) for b in below - {component}), default=0)
        return floor[component]

    floors = {name: floor_of(component_of[name]) for name in layers}
    sizes = sorted(((sum(1 for _ in p.open()), m) for m, p in files.items()), reverse=True)
    return {"floors": floors, "back_up": back_up, "layer_circles": layer_circles, "module_circles": module_circles,
            "hidden": sorted(hidden), "module_graph": module_graph, "largest": sizes[:5]}


def main():
    argparse.ArgumentParser(description="Print the project's import picture (no options).").parse_args()
    p = picture()
    print(f"floors: {max(p['floors'].values())}")
    for name, level in sorted(p["floors"].items(), key=lambda item: (item[1], item[0])):
        print(f"  {level}: {name}")
    print(f"arrows back up (layers importing each other): {len(p['back_up'])} {p['back_up']}")
    print(f"circles between layers: {len(p['layer_circles'])}; between modules: {len(p['module_circles'])} "
          f"{p['module_circles']}")
    print(f"project imports inside functions: {len(p['hidden'])} {p['hidden']}")
    print("largest files (lines): " + ", ".join(f"{m} {n}" for n, m in p["largest"]))


if __name__ == "__main__":
    main()
