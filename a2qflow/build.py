"""`a2qflow build`: every stage in order into one build directory, skipping what is up to date.

What a stage reads and writes is declared once, in ``layout.STAGE_FILES``; this module derives
everything else from it. A stage's fingerprint is the slice of the build config it depends on,
the hashes of the artifacts it reads, the versions of its tools and a hash of the code it runs
(its entry module and every a2qflow module that module imports, followed through the package,
plus the template folders it declares). After a stage succeeds a manifest
(``.a2qflow/<stage>.json``) records that fingerprint and the hashes of its outputs; a later
build skips the stage only when all of them still match. Changing the folding re-runs compile,
which rewrites the folded graph, which re-runs rtl and synth.

The build directory is locked for the whole run: a second build into it is refused with the
process that holds it.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import importlib.metadata as md
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a2qflow import layout
from a2qflow.artifacts import config_hash, file_sha256, read_json, write_json
from a2qflow.config import BuildConfig, load_config
from a2qflow.errors import A2QFlowError

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
ASSET_SUFFIXES = (".j2", ".yaml", ".cpp", ".v", ".sv", ".tcl")

__all__ = ["STAGES", "build_lock", "check_writable", "load_config", "run"]


# --- what each stage runs and depends on --------------------------------------------------------


def _train(c: BuildConfig, d: Path) -> Any:
    from a2qflow import train

    return train.run(c.model, c.train, d, progress=True)


def _export(c: BuildConfig, d: Path) -> Any:
    from a2qflow import export

    return export.run(d)


def _import(c: BuildConfig, d: Path) -> Any:
    from a2qflow import qonnx_import

    imp = c.imported
    assert imp is not None  # BuildConfig puts import only in imported builds' stages
    return qonnx_import.run(Path(imp.model), d, Path(imp.samples) if imp.samples else None,
                            imp.trained_p)


def _import_inputs(c: BuildConfig) -> Any:
    """The import's settings and the content of the files it reads from outside the build."""
    imp = c.imported
    if imp is None:
        return None
    files = {k: file_sha256(Path(p)) for k, p in (("model", imp.model),
                                                  ("samples", imp.samples)) if p}
    return {"settings": imp.to_dict(), "files": files}


def _compile(c: BuildConfig, d: Path) -> Any:
    from a2qflow import compile as compile_stage

    hw = c.hardware
    return compile_stage.run(d, board=hw.board, folding=Path(hw.folding) if hw.folding else None,
                             target_fps=hw.target_fps, acc_bits=hw.acc_bits)


def _verify(c: BuildConfig, d: Path) -> Any:
    from a2qflow import verify

    return verify.run(d)


def _rtl(c: BuildConfig, d: Path) -> Any:
    from a2qflow import rtl

    return rtl.run(d, compare_acc_bits=c.hardware.compare_acc_bits,
                   generator=c.hardware.unrolled_generator, backend=c.hardware.backend)


def _synth(c: BuildConfig, d: Path) -> Any:
    from a2qflow import synth

    return synth.run(d, layer_limit_s=c.hardware.synth_layer_limit_s, echo=print)


def _pnr(c: BuildConfig, d: Path) -> Any:
    from a2qflow import pnr

    return pnr.run(d, seed=c.hardware.pnr_seed, compare_acc_bits=c.hardware.compare_acc_bits)


def _folding_hash(c: BuildConfig) -> str | None:
    folding = c.hardware.folding
    return file_sha256(Path(folding)) if folding and Path(folding).is_file() else folding


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[BuildConfig, Path], Any]
    config: Callable[[BuildConfig], Any]  # the slice of the config this stage depends on

    @property
    def files(self) -> layout.StageFiles:
        return layout.stage_files(self.name)


STAGES: tuple[Stage, ...] = (
    Stage("train", _train, lambda c: (c.model.to_dict(), c.train.to_dict())),
    Stage("export", _export, lambda c: None),
    Stage("import", _import, _import_inputs),
    Stage("compile", _compile, lambda c: (c.hardware.board, _folding_hash(c),
                                          c.hardware.target_fps, c.hardware.acc_bits)),
    Stage("verify", _verify, lambda c: None),
    Stage("rtl", _rtl, lambda c: (c.hardware.compare_acc_bits, c.hardware.unrolled_generator,
                                  c.hardware.backend.value)),
    Stage("synth", _synth, lambda c: None),
    Stage("pnr", _pnr, lambda c: (c.hardware.pnr_seed, c.hardware.compare_acc_bits)),
)
assert tuple(s.name for s in STAGES) == layout.STAGE_NAMES, "layout.STAGE_FILES is out of order"


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module name an import statement in ``path`` (module ``module``) refers to.

    ``from pkg import name`` yields both ``pkg`` and ``pkg.name`` (``name`` may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def module_closure(module: str) -> list[Path]:
    """Source files of ``module`` and of every a2qflow module it imports, transitively.

    Read from the import statements (no import happens), so it is exactly the code the stage
    can run, including modules imported inside functions.
    """
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        todo += sorted(imported_modules(path, name))
    return sorted(seen.values())


def _module_file(name: str) -> Path | None:
    """The source file of an a2qflow module, found without importing anything."""
    parts = name.split(".")
    if parts[0] != "a2qflow":
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def code_hash(files: layout.StageFiles) -> str:
    """Hash of a2qflow's sources and templates behind a stage: editing any of them re-runs it."""
    h = hashlib.sha256()
    paths = list(module_closure(files.module))
    for rel in files.assets:
        root = REPO_ROOT / rel
        paths += sorted(p for p in root.rglob("*") if p.suffix in ASSET_SUFFIXES)
    for f in paths:
        h.update(f.relative_to(REPO_ROOT).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for t in tools:
        try:
            versions[t] = md.version(t)
        except md.PackageNotFoundError:
            versions[t] = "missing"
    return versions


def _fingerprint(stage: Stage, config: BuildConfig, build_dir: Path) -> dict[str, Any]:
    return {"stage": stage.name, "config_hash": config_hash(stage.config(config)),
            "inputs": layout.input_hashes(build_dir, stage.files.present_inputs(build_dir)),
            "tools": _tool_versions(stage.files.tools), "code": code_hash(stage.files)}


def _manifest_path(build_dir: Path, stage: Stage) -> Path:
    return build_dir / layout.STATE_DIR / f"{stage.name}.json"


def is_up_to_date(stage: Stage, config: BuildConfig, build_dir: Path) -> bool:
    path = _manifest_path(build_dir, stage)
    if not path.is_file():
        return False
    try:
        manifest = read_json(path, "manifest", "a2qflow build")
        expected = _fingerprint(stage, config, build_dir)
    except A2QFlowError:
        return False
    outputs = manifest.get("outputs", {})
    outputs_ok = all((build_dir / o).exists() and outputs.get(o) == layout.content_hash(
        build_dir / o) for o in stage.files.writes)
    return outputs_ok and all(manifest.get(k) == v for k, v in expected.items())


# --- the build directory ------------------------------------------------------------------------


def check_writable(build_dir: Path) -> Path:
    """Refuse, before any work, a build directory that is a file or cannot be written."""
    build_dir = Path(build_dir)
    if build_dir.exists() and not build_dir.is_dir():
        raise A2QFlowError(f"build directory {build_dir} is a file",
                           "give a directory path (or remove the file)")
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        probe = build_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise A2QFlowError(f"cannot write to build directory {build_dir} ({exc.strerror})",
                           "choose a writable directory (--build-dir) or fix its "
                           "permissions") from None
    return build_dir


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the build directory; a second holder is refused by name."""
    path = Path(build_dir) / layout.LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise A2QFlowError(f"build directory {build_dir} is in use by {holder}",
                               "wait for that build to finish, or build into another "
                               "directory") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} (started {time.strftime('%Y-%m-%d %H:%M:%S')})")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def run(config: BuildConfig, build_dir: Path,
        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the configured stages in order; returns {stage: "ran" | "skipped"} and timings.

    Everything that can be checked without running a stage is checked first (the config was
    validated on construction; an infeasible accumulator width, the directory, the lock), so a
    bad setting costs nothing and writes nothing."""
    if "train" in config.stages:
        from a2qflow.train import check_feasible

        check_feasible(config.model)
    build_dir = check_writable(build_dir)
    status: dict[str, Any] = {}
    with build_lock(build_dir):
        write_json(build_dir / layout.BUILD_JSON, config.to_dict())
        selected = [s for s in STAGES if s.name in config.stages]
        for i, stage in enumerate(selected, 1):
            prefix = f"[{i}/{len(selected)}] {stage.name:8s}"
            if is_up_to_date(stage, config, build_dir):
                echo(f"{prefix} up to date, skipped")
                status[stage.name] = {"status": "skipped"}
                continue
            echo(f"{prefix} running ...")
            t0 = time.time()
            _manifest_path(build_dir, stage).unlink(missing_ok=True)
            fingerprint = _fingerprint(stage, config, build_dir)
            stage.run(config, build_dir)
            seconds = round(time.time() - t0, 1)
            outputs = {o: layout.content_hash(layout.require(build_dir, o))
                       for o in stage.files.writes}
            write_json(_manifest_path(build_dir, stage),
                       fingerprint | {"outputs": outputs, "seconds": seconds})
            echo(f"{prefix} done in {seconds} s")
            status[stage.name] = {"status": "ran", "seconds": seconds}
    return status
