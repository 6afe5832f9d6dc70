"""The house rules of the package, read from its own imports (the README's "How it is built" draws the same
layers): nothing imports upward, the three job packages do not import each other, no import cycle, no module
imports another's private name, and svd3d's own modules are imported at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "svd3d"

# bottom to top; a module may import its own layer and the ones below it
LAYERS = [
    {"errors", "version", "defaults", "signals"},
    {
        "outputs",
        "devices",
        "runinfo",
        "media",
        "image",
        "image_metrics",
        "segment",
        "core",
        "geometry",
        "batch",
        "viewer",
    },
    {"models", "cameras"},
    {"render"},
    {"pipelines", "recon", "training"},  # beside each other: none imports another
    {"eval"},
    {"api", ""},  # "": the package root, whose names load svd3d.api on first use
    {"cli", "__main__", "app"},  # app: `svd3d app`, the web page over the API
]
SIBLINGS = LAYERS[4]
# own modules that may be imported inside a function, and why
LAZY = {
    ("svd3d", "svd3d.api"): "the package's public names load the API (and torch) on first use",
    ("svd3d", "svd3d.models.unet"): "diffusers resolves ['svd3d', 'PerFrameUNet'] in a model_index.json",
}
LAZY_TARGETS = {"svd3d.models.unet"}  # subclasses a diffusers model: importing it imports diffusers


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def top(name: str) -> str:
    """svd3d.recon.field -> 'recon'; svd3d -> ''."""
    return name.split(".")[1] if "." in name else ""


def layer(name: str) -> int:
    return next(i for i, group in enumerate(LAYERS) if top(name) in group)


def imports(name: str, path: Path):
    """(target module, imported names, inside a function) for each import of svd3d's own modules in `path`."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    local = {
        id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)
    }
    found = modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            if base != "svd3d" and not base.startswith("svd3d."):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                target = target if target in found else base
                yield target, alias.name, id(node) in local
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "svd3d" or alias.name.startswith("svd3d."):
                    yield alias.name, None, id(node) in local


def edges() -> list[tuple[str, str, str | None, bool]]:
    return [(name, t, what, lazy) for name, path in modules().items() for t, what, lazy in imports(name, path)]


def test_every_module_has_a_layer():
    assert all(any(top(name) in group for group in LAYERS) for name in modules()), "add new modules to LAYERS"


def test_nothing_imports_upward_or_sideways():
    wrong = []
    for source, target, _, _lazy in edges():
        if (source, target) in LAZY:
            continue
        if layer(target) > layer(source):
            wrong.append(f"{source} imports {target} (a higher layer)")
        elif top(source) in SIBLINGS and top(target) in SIBLINGS and top(source) != top(target):
            wrong.append(f"{source} imports {target} (pipelines, recon and training stand beside each other)")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for source, target, _, lazy in edges():
        if not lazy and source != target:
            graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("folder", ["svd3d", "tests", "benchmarks", "recipes"])
def test_no_private_names_across_modules(folder):
    wrong = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("svd3d"):
                wrong += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_own_modules_are_imported_at_the_top():
    wrong = [
        f"{source} imports {target} inside a function"
        for source, target, _, lazy in edges()
        if lazy and (source, target) not in LAZY and target not in LAZY_TARGETS
    ]
    assert not wrong, "\n".join(wrong)
