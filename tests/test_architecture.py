"""Stages meet only in the build directory: no stage module imports another stage's modules."""

from __future__ import annotations

from pathlib import Path

from a2qflow import layout
from a2qflow.build import imported_modules

PACKAGE = Path(__file__).resolve().parents[1] / "a2qflow"

# Which modules make up each stage (a stage may be a module or a subpackage plus helpers that
# only it uses). Shared, stage-free modules (layout, graph, bounds, config, models, tools, ...)
# are importable by every stage.
STAGE_MODULES = {
    "train": ("a2qflow.train", "a2qflow.recipes", "a2qflow.ptq"),
    "export": ("a2qflow.export",),
    "import": ("a2qflow.qonnx_import",),
    "compile": ("a2qflow.compile",),
    "verify": ("a2qflow.verify",),
    "rtl": ("a2qflow.rtl",),
    "synth": ("a2qflow.synth",),
    "bitstream": ("a2qflow.bitstream",),
    "pnr": ("a2qflow.pnr",),
}


def owner(module: str) -> str | None:
    for stage, prefixes in STAGE_MODULES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return stage
    return None


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_no_stage_module_imports_another_stage():
    crossings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = owner(module_name(path))
        if here is None:
            continue
        for imported in imported_modules(path, module_name(path)):
            there = owner(imported)
            if there is not None and there != here:
                crossings.append(f"{module_name(path)} ({here}) imports {imported} ({there})")
    assert not crossings, "\n".join(crossings)


def test_every_declared_stage_has_its_module():
    for stage, files in layout.STAGE_FILES.items():
        assert owner(files.module) == stage, (stage, files.module)


def test_shared_modules_import_no_stage():
    """layout, graph and friends sit below every stage; a stage import there would be a cycle."""
    for name in ("layout", "graph", "bounds", "config", "artifacts", "finn_env", "validate"):
        path = PACKAGE / f"{name}.py"
        stages = {owner(m) for m in imported_modules(path, f"a2qflow.{name}")} - {None}
        assert not stages, (name, stages)
