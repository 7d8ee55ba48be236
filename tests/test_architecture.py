"""The shape of the package: layers, no import cycles, modules, classes, functions and pages
of a readable size, and no private name used outside its module.

The import graph is read from the source (``ast``), every import counted, including the
ones inside functions and under ``TYPE_CHECKING``: a lazy import still ties two modules.
Each size and privacy test lists every offender in its message, so one run shows all that is
left to split.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "optical_core"

#: The layers, bottom first. A module may import from its own layer and the ones below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ot", "perturb", "caches", "data", "gold", "demo_set", "alignment", "pharaoh", "fingerprint",
     "safe_write", "runs"),
    ("encoders",),
    ("pairs", "retrieval"),
    ("distill",),
    ("experiments",),
    ("cli",),
)
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 80
MAX_PAGE_LINES = 300
#: Where the limits hold: the library, the app's shared helpers and its pages.
SOURCE_DIRS = ("optical_core", "ui", "pages")
#: Functions allowed past MAX_FUNCTION_LINES, as ``path:qualified.name``, each with why.
#: Keep this tiny: only figure builders, whose length is one flat list of trace and layout
#: settings that reads top to bottom (splitting them scatters one figure's look).
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {}


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


def source_files() -> list[Path]:
    """Every Python file of the library, ``ui/``, ``pages/`` and ``app.py``."""
    return sorted(p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py")) + [REPO / "app.py"]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def definitions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node)`` of every class and function in ``tree``, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from definitions(node, f"{name}.")
        else:
            yield from definitions(node, prefix)


def long_definitions(path: Path, allowed: dict[str, str]) -> list[str]:
    """``path:name: N lines (at most M)`` for each class over MAX_CLASS_LINES and each
    function over MAX_FUNCTION_LINES (decorators not counted) not in ``allowed``."""
    out = []
    for name, node in definitions(ast.parse(path.read_text(encoding="utf-8"))):
        limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
        lines = node.end_lineno - node.lineno + 1
        key = f"{rel(path)}:{name}"
        if lines > limit and key not in allowed:
            out.append(f"{key}: {lines} lines (at most {limit})")
    return out


def project_modules() -> set[str]:
    """Dotted names of every importable module of the project (``optical_core``, ``ui``)."""
    return {module_name(p) for d in ("optical_core", "ui") for p in (REPO / d).rglob("*.py")}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute reads on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def private_uses(path: Path, modules: set[str]) -> list[str]:
    """Each private name ``path`` takes from another project module: ``from m import _x``
    (``m`` a project module) and ``m._x`` where ``m`` names an imported project module."""
    here = module_name(path) if path.parent.name != "pages" and path.name != "app.py" else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: dict[str, str] = {}  # a local name -> the project module it names
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in modules:
                    bound[a.asname] = a.name
                elif a.name.split(".")[0] in {m.split(".")[0] for m in modules}:
                    bound[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                mod = ".".join([*base[: len(base) - node.level + 1], *filter(None, [node.module])])
            else:
                mod = node.module or ""
            if mod not in modules and not any(m.startswith(mod + ".") for m in modules):
                continue
            for a in node.names:
                if is_private(a.name) and mod != here:
                    out.append(f"{rel(path)}:{node.lineno}: from {mod} import {a.name}")
                elif f"{mod}.{a.name}" in modules:
                    bound[a.asname or a.name] = f"{mod}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = dotted(node.value)
            if owner is None or owner.split(".")[0] not in bound:
                continue
            head, _, tail = owner.partition(".")
            target = ".".join(filter(None, [bound[head], tail])) if bound[head] != head else owner
            if target in modules and target != here:
                out.append(f"{rel(path)}:{node.lineno}: {owner}.{node.attr} (of {target})")
    return out


def test_modules_stay_readable():
    long = [f"{rel(p)}: {n} lines (at most {MAX_MODULE_LINES})" for p in source_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, f"{len(long)} modules to split:\n" + "\n".join(long)


def test_classes_and_functions_stay_readable():
    long = [line for p in source_files() for line in long_definitions(p, LONG_FUNCTIONS_ALLOWED)]
    assert not long, f"{len(long)} classes or functions to split:\n" + "\n".join(long)


def test_no_private_name_is_used_outside_its_module():
    modules = project_modules()
    uses = [line for p in source_files() for line in private_uses(p, modules)]
    assert not uses, (f"{len(uses)} private names used outside their module (make them "
                      "public or move the code that needs them):\n" + "\n".join(uses))


def test_the_size_and_privacy_checks_find_offenders(tmp_path, monkeypatch):
    pkg = tmp_path / "optical_core" / "sub"
    pkg.mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (pkg / "a.py").write_text(f"def _helper():\n    pass\n\n\ndef long():\n{body}\n")
    (pkg / "b.py").write_text("from optical_core.sub.a import _helper\n"
                              "from optical_core.sub import a\n"
                              "import optical_core.sub.a as aa\n"
                              "import optical_core.sub.a\n"
                              "a._helper(); aa._helper(); optical_core.sub.a._helper()\n"
                              "a.__name__\n")
    (pkg / "c.py").write_text("from .a import _helper\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    modules = {"optical_core.sub.a", "optical_core.sub.b", "optical_core.sub.c",
               "optical_core.sub", "optical_core"}
    limit = MAX_FUNCTION_LINES
    assert long_definitions(pkg / "a.py", {}) == [
        f"optical_core/sub/a.py:long: {limit + 1} lines (at most {limit})"]
    assert long_definitions(pkg / "a.py", {"optical_core/sub/a.py:long": "why"}) == []
    assert private_uses(pkg / "b.py", modules) == [
        "optical_core/sub/b.py:1: from optical_core.sub.a import _helper",
        "optical_core/sub/b.py:5: a._helper (of optical_core.sub.a)",
        "optical_core/sub/b.py:5: aa._helper (of optical_core.sub.a)",
        "optical_core/sub/b.py:5: optical_core.sub.a._helper (of optical_core.sub.a)"]
    assert private_uses(pkg / "c.py", modules) == [
        "optical_core/sub/c.py:1: from optical_core.sub.a import _helper"]
    assert private_uses(pkg / "a.py", modules) == []


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
