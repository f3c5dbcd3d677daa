"""Which code produced a result: the project's import graph, and a digest of the sources a result depends on.

A study reuses a finished run only when the digest of the sources behind it (the transitive project
imports of the modules that produced it) is unchanged, so the README's figures always match the
committed code; a change to federated code does not make centralized runs stale.
"""
import ast
import hashlib
from pathlib import Path

from ground.paths import REPO_ROOT

PACKAGES = ("ground", "common", "data_processing", "HAR_centralized", "HAR_federated", "IR_centralized", "benchmarks",
            "data")


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


def import_closure(*roots, files=None):
    """The roots and every project module they import, directly or not (packages' __init__ included)."""
    files = files or module_files()
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module not in files:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        todo += [target for target, _ in project_imports(files[module], set(files))] + parents
    return sorted(seen)


def source_digest(*roots, repo=REPO_ROOT, packages=PACKAGES):
    """blake2b of the sources of import_closure(roots): names and contents."""
    files = module_files(repo, packages)
    digest = hashlib.blake2b(digest_size=12)
    for module in import_closure(*roots, files=files):
        digest.update(module.encode())
        digest.update(files[module].read_bytes())
    return digest.hexdigest()
