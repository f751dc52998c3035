"""Module structure (issue 17): no import cycles between lanet_core modules, no private cross-module imports,
file primitives in one place (``lanet_core.io``)."""

from __future__ import annotations

import ast
from pathlib import Path

import lanet_core

PACKAGE = Path(lanet_core.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _module_level(body: list[ast.stmt]):
    """Statements executed at import: the module body, including inside if/try/with blocks, not functions."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, field, []) or [])
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def _imports(name: str, path: Path, modules: dict[str, Path], *, top_level_only: bool) -> list[tuple[str, list[str]]]:
    """(imported lanet_core module, imported names) for each import statement of the module."""
    tree = ast.parse(path.read_text())
    nodes = list(_module_level(tree.body)) if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [a.name for a in node.names]
            for n in names:  # "from lanet_core.study import figures" imports a module
                if f"{node.module}.{n}" in modules:
                    out.append((f"{node.module}.{n}", []))
            if node.module in modules:
                out.append((node.module, names))
    return out


def _graph(modules: dict[str, Path], *, top_level_only: bool) -> dict[str, set[str]]:
    """module -> the lanet_core modules it imports (a package and its own submodules are not edges)."""
    return {m: {t for t, _ in _imports(m, p, modules, top_level_only=top_level_only) if t != m
                and not m.startswith(t + ".") and not t.startswith(m + ".")} for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycles_at_module_level() -> None:
    """Module-level imports form a DAG."""
    cycles = _cycles(_graph(_modules(), top_level_only=True))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    """Issue 33: imports inside functions count too (a lazy import that closes a circle is still a circle)."""
    cycles = _cycles(_graph(_modules(), top_level_only=False))
    assert not cycles, "import cycles (function-level imports included): " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_an_injected_function_level_import(tmp_path) -> None:
    """The check above is not vacuous: two modules that import each other, one of them inside a function."""
    (tmp_path / "a.py").write_text("import lanet_core.x_b\n")
    (tmp_path / "b.py").write_text("def f():\n    from lanet_core.x_a import g\n")
    modules = {"lanet_core.x_a": tmp_path / "a.py", "lanet_core.x_b": tmp_path / "b.py"}
    assert not _cycles(_graph(modules, top_level_only=True))
    assert _cycles(_graph(modules, top_level_only=False)) == [["lanet_core.x_a", "lanet_core.x_b", "lanet_core.x_a"]]


def test_no_private_names_imported_across_modules() -> None:
    modules = _modules()
    bad = [f"{m} imports {t}.{n}" for m, p in modules.items()
           for t, names in _imports(m, p, modules, top_level_only=False) if t != m
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_file_primitives_live_in_io() -> None:
    modules = _modules()
    defs = [m for m, p in modules.items() for node in ast.parse(p.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name in ("atomic_write_bytes", "atomic_write_text", "file_sha256")]
    assert defs == ["lanet_core.io"] * 3


def test_every_architecture_builds_a_model_of_the_protocol() -> None:
    """Each registry entry builds a LanetModel whose protocol attributes are its own, not set from outside."""
    import torch

    from lanet_core.config import resolve_config
    from lanet_core.models.base import LanetModel
    from lanet_core.models.factory import build_model
    from lanet_core.models.registry import ARCHITECTURES

    torch.set_num_threads(1)
    for arch in ARCHITECTURES:
        backbone = "vit_tiny_patch16_224" if arch == "vit" else "resnet18"
        cfg = resolve_config({"model": {"arch": arch, "backbone": backbone}, "data": {"image_size": 64}})
        model = build_model(cfg)
        assert isinstance(model, LanetModel), arch
        assert model.bn_frozen is False and model.bn_rebuild_pending is False
        assert set(model.component_modules()) and hasattr(model, "gradcam_layer")
        assert (model.gradcam_layer is None) == (not ARCHITECTURES[arch].class_head), arch


def test_declared_builder_options_match_the_builders() -> None:
    """The registry's ``options`` of each baseline are exactly its builder's keyword options (the declaration
    cannot drift from the code it describes)."""
    import inspect

    from lanet_core.models.registry import ARCHITECTURES

    common = {"backbone", "weights", "image_size", "num_classes"}
    for name, arch in ARCHITECTURES.items():
        if name == "lanet":
            continue
        params = [p for p in inspect.signature(arch.build_fn()).parameters if p not in common]
        assert tuple(params) == arch.options, name


STUDY_ENGINE = ("profiles", "experiments", "plan", "runner", "executor", "records", "posthoc")
STUDY_ANALYSIS = ("crossval", "claims", "figures", "pretraining", "summary", "notebook")


def test_the_study_engine_never_imports_the_analysis() -> None:
    """Issue 33: lanet_core.study keeps one package (see docs/architecture.md) but two layers: the engine that runs a
    study never imports the analysis that reads its records, at any level (function-level imports included)."""
    modules = _modules()
    assert {f"lanet_core.study.{m}" for m in STUDY_ENGINE + STUDY_ANALYSIS} <= set(modules), "a module was renamed"
    graph = _graph(modules, top_level_only=False)
    bad = [(e, t) for e in STUDY_ENGINE for t in graph[f"lanet_core.study.{e}"]
           if t.startswith("lanet_core.study.") and t.rsplit(".", 1)[1] in STUDY_ANALYSIS]
    assert not bad, f"engine modules importing analysis modules: {bad}"
