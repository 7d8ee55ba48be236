"""The shape of the package: layers, no import cycles, modules and pages of a readable size.

The import graph is read from the source (``ast``), every import counted, including the
ones inside functions and under ``TYPE_CHECKING``: a lazy import still ties two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "optical_core"

#: The layers, bottom first. A module may import from its own layer and the ones below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ot", "perturb", "data", "alignment", "pharaoh", "fingerprint", "safe_write", "runs"),
    ("encoders",),
    ("pairs", "retrieval"),
    ("distill",),
    ("experiments",),
    ("cli",),
)
MAX_MODULE_LINES = 800
MAX_PAGE_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Modules of ``optical_core`` (names in ``modules``) that ``path`` imports.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module,
    else of ``pkg`` itself.
    """
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                found.add(sub if sub in modules else mod)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the top-level __init__ re-exports from every layer
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_absolute_names(tmp_path):
    pkg = tmp_path / "optical_core" / "sub"
    pkg.mkdir(parents=True)
    mod = pkg / "mod.py"
    mod.write_text("from . import other\nfrom ..ot import costs\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        names = {"optical_core.sub.other", "optical_core.ot.costs", "optical_core.ot"}
        assert imports_of(mod, names) == {"optical_core.sub.other", "optical_core.ot.costs"}
    finally:
        REPO = saved


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40, "the graph should hold every module of optical_core"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_every_import_points_to_the_same_layer_or_below():
    upward = []
    for module, targets in import_graph().items():
        mine = layer_of(module)
        if mine is None:
            continue
        upward += [f"{module} → {t}" for t in targets
                   if (theirs := layer_of(t)) is not None and theirs > mine]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_readable(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines (at most {MAX_MODULE_LINES})"


@pytest.mark.parametrize("path", sorted((REPO / "pages").glob("*.py")) + [REPO / "app.py"],
                         ids=lambda p: p.name)
def test_pages_are_thin(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_PAGE_LINES, f"{path.name}: {lines} lines (at most {MAX_PAGE_LINES})"


def test_subpackage_inits_only_document():
    """Code lives in the module named for its job; a subpackage ``__init__`` holds its
    docstring only, so importing one module never drags its siblings in."""
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent == PACKAGE:
            continue
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{init} holds code"


def test_the_public_names_import_from_the_top_level():
    import optical_core

    for name in optical_core.__all__:
        assert getattr(optical_core, name) is not None
    with pytest.raises(AttributeError):
        optical_core.no_such_name  # noqa: B018
