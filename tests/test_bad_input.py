"""Every bad input a user can give: one clear message (problem + fix), exit 2, artifacts intact.

Each case runs the real CLI on a real build directory in a given state (trained, exported,
compiled, simulated on digits), snapshots every file before and after, and checks that
nothing that existed changed and that no artifact appeared (a lock file under ``.a2qflow/``
and ``*.failed.json`` / ``rtl.failed/`` failure reports are allowed). ``docs/bad-input.md``
is generated from these cases: ``pytest tests/test_bad_input.py --bad-input-table
docs/bad-input.md``; a test checks it lists every case.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from a2qflow import layout
from a2qflow.cli import cli

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "docs" / "bad-input.md"
UNWRITABLE = Path("/proc/a2qflow-cannot-write-here/build")  # even root cannot create this
ALLOWED_NEW = (re.compile(r"^\.a2qflow/"), re.compile(r"\.failed\.json$"),
               re.compile(r"^rtl\.failed/"))
RESULTS: list[dict[str, str]] = []

Prepare = Callable[[Path, Path], None]  # (build dir, scratch dir)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # {B}: the build dir, {T}: the scratch dir
    expect: str  # regex the output must match
    state: str = "none"  # none | empty | file | unwritable | trained | exported | compiled
    #                       | simulated
    prepare: Prepare | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    hold_lock: bool = False


# --- small ways to damage a build ----------------------------------------------------------------


def write(rel: str, content: bytes | str, where: str = "B") -> Prepare:
    def prepare(build: Path, tmp: Path) -> None:
        path = (build if where == "B" else tmp) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
    return prepare


def remove(rel: str) -> Prepare:
    def prepare(build: Path, tmp: Path) -> None:
        path = build / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return prepare


def edit_json(rel: str, change: Callable[[dict], None]) -> Prepare:
    def prepare(build: Path, tmp: Path) -> None:
        data = json.loads((build / rel).read_text())
        change(data)
        (build / rel).write_text(json.dumps(data))
    return prepare


def both(*steps: Prepare) -> Prepare:
    def prepare(build: Path, tmp: Path) -> None:
        for step in steps:
            step(build, tmp)
    return prepare


def foreign_torch_file(build: Path, tmp: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp / "other.pt")


def append(rel: str, text: str) -> Prepare:
    def prepare(build: Path, tmp: Path) -> None:
        with open(build / rel, "a") as f:
            f.write(text)
    return prepare


def fake_vivado(build: Path, tmp: Path) -> None:
    (tmp / "vivado" / "bin").mkdir(parents=True)
    (tmp / "vivado" / "bin" / "vivado").write_text("#!/bin/sh\n")


def yaml_config(text: str) -> Prepare:
    return write("c.yaml", text, where="T")


GOOD_MODEL = "model: {arch: tfc, quant: a2q+, acc_bits: 12}\ntrain: {dataset: digits}\n"
NO_VIVADO = {"XILINX_VIVADO": None, "XILINX_HLS": None}
FOLDING = '{"Defaults": {}}'

CASES: list[Case] = [
    # --- train -----------------------------------------------------------------------------
    Case("train-unknown-quant", ("train", "{B}", "--quant", "a3q"), r"'a3q' is not one of"),
    Case("train-unknown-arch", ("train", "{B}", "--arch", "resnet"), r"'resnet' is not one of"),
    Case("train-acc-bits-too-wide", ("train", "{B}", "-P", "40"),
         r"acc_bits=40 is not valid.*\n.*2 to 32"),
    Case("train-acc-bits-too-narrow", ("train", "{B}", "-P", "1"), r"acc_bits=1 is not valid"),
    Case("train-weight-bits", ("train", "{B}", "--weight-bits", "9"),
         r"weight_bits=9 is not valid"),
    Case("train-act-bits", ("train", "{B}", "--act-bits", "0"), r"act_bits=0 is not valid"),
    Case("train-input-bits", ("train", "{B}", "--input-bits", "12"),
         r"input_bits=12 is not valid"),
    Case("train-hidden-zero", ("train", "{B}", "--hidden", "0"), r"hidden=0 is not valid"),
    Case("train-infeasible-hidden-p", ("train", "{B}", "-P", "4"),
         r"P=4 is infeasible for layer 1.*\n.*use --acc-bits >= "),
    Case("train-infeasible-first-p", ("train", "{B}", "--quant", "a2q", "--first-acc-bits", "8"),
         r"P=8 is infeasible for layer 0.*\n.*use --first-acc-bits >= "),
    Case("train-infeasible-last-p", ("train", "{B}", "--quant", "a2q", "--last-acc-bits", "5"),
         r"P=5 is infeasible for layer 3.*\n.*use --last-acc-bits >= "),
    Case("train-first-acc-bits-range", ("train", "{B}", "--first-acc-bits", "33"),
         r"first_acc_bits=33 is not valid"),
    Case("train-float-epochs-negative", ("train", "{B}", "--float-epochs", "-1"),
         r"float_epochs=-1 is not valid"),
    Case("train-batch-size-zero", ("train", "{B}", "--batch-size", "0"),
         r"batch_size=0 is not valid"),
    Case("train-lr-zero", ("train", "{B}", "--lr", "0"), r"lr=0.0 is not valid.*\n.*positive"),
    Case("train-qat-lr-negative", ("train", "{B}", "--qat-lr", "-1"), r"qat_lr=-1.0 is not valid"),
    Case("train-distill-alpha", ("train", "{B}", "--distill-alpha", "2"),
         r"distill_alpha=2.0 is not valid.*\n.*0 to 1"),
    Case("train-distill-temperature", ("train", "{B}", "--distill-temperature", "0"),
         r"distill_temperature=0.0 is not valid"),
    Case("train-progressive-step", ("train", "{B}", "--progressive-step", "0"),
         r"progressive_step=0 is not valid"),
    Case("train-progressive-start", ("train", "{B}", "--progressive-start", "64"),
         r"progressive_start=64 is not valid"),
    Case("train-reproject-negative", ("train", "{B}", "--reproject-every", "-1"),
         r"reproject_every=-1 is not valid"),
    Case("train-epochs-not-a-number", ("train", "{B}", "--qat-epochs", "ten"),
         r"'ten' is not a valid integer"),
    Case("train-unknown-dataset", ("train", "{B}", "--dataset", "imagenet"),
         r"'imagenet' is not one of"),
    Case("train-mnist-missing", ("train", "{B}", "--dataset", "mnist", "--data-dir", "{T}/none"),
         r"(?i)mnist"),
    Case("train-mnist-empty-dir", ("train", "{B}", "--dataset", "mnist", "--data-dir", "{T}/d"),
         r"(?i)mnist", prepare=write("d/README", "nothing here", where="T")),
    Case("train-mnist-corrupt", ("train", "{B}", "--dataset", "mnist", "--data-dir", "{T}/d"),
         r"(?i)mnist|idx|corrupt",
         prepare=both(*(write(f"d/{n}-ubyte", b"\x00\x00\x08\x01garbage", where="T")
                        for n in ("train-images-idx3", "train-labels-idx1",
                                  "t10k-images-idx3", "t10k-labels-idx1")))),
    Case("train-cifar-missing", ("train", "{B}", "--dataset", "cifar10", "--arch", "cnv",
                                 "--data-dir", "{T}/none"), r"(?i)cifar"),
    Case("train-fashion-missing", ("train", "{B}", "--dataset", "fashion-mnist",
                                   "--data-dir", "{T}/none"), r"(?i)fashion"),
    Case("train-init-from-missing", ("train", "{B}", "--init-from", "{T}/none.pt"),
         r"checkpoint not found"),
    Case("train-init-from-corrupt", ("train", "{B}", "--init-from", "{T}/bad.pt"),
         r"corrupt or not a torch file", prepare=write("bad.pt", b"\x80garbage", where="T")),
    Case("train-init-from-foreign", ("train", "{B}", "--init-from", "{T}/other.pt"),
         r"is not an a2qflow checkpoint", prepare=foreign_torch_file),
    Case("train-init-from-other-network", ("train", "{B}", "--hidden", "32", "--init-from",
                                           "{B}/checkpoint.pt"),
         r"holds another network \(hidden 16 vs 32\)", state="exported"),
    Case("train-into-a-file", ("train", "{B}"), r"is a file", state="file"),
    Case("train-into-unwritable", ("train", "{B}"), r"cannot write to build directory",
         state="unwritable"),
    Case("train-locked", ("train", "{B}"), r"in use by pid \d+", state="exported",
         hold_lock=True),
    # --- export ----------------------------------------------------------------------------
    Case("export-no-build-dir", ("export", "{B}"), r"does not exist.*\n.*a2qflow train"),
    Case("export-no-checkpoint", ("export", "{B}"), r"checkpoint not found", state="empty"),
    Case("export-corrupt-checkpoint", ("export", "{B}"), r"corrupt or not a torch file",
         state="exported", prepare=write("checkpoint.pt", b"garbage")),
    Case("export-foreign-checkpoint", ("export", "{B}"), r"is not an a2qflow checkpoint",
         state="exported", prepare=lambda b, t: torch.save({"x": 1}, b / "checkpoint.pt")),
    Case("export-missing-samples", ("export", "{B}"), r"samples.npz not found",
         state="exported", prepare=remove("samples.npz")),
    Case("export-corrupt-samples", ("export", "{B}"), r"samples.npz is corrupt",
         state="exported", prepare=write("samples.npz", b"garbage")),
    Case("export-into-a-file", ("export", "{B}"), r"is a file", state="file"),
    # --- compile ---------------------------------------------------------------------------
    Case("compile-unknown-board", ("compile", "{B}", "--board", "nope"),
         r"unknown board 'nope'.*\n.*pynq-z2", state="exported"),
    Case("compile-fps-above-clock", ("compile", "{B}", "--target-fps", "1e12"),
         r"target_fps=1e\+12 is above the maximum 1e\+08 fps", state="exported"),
    Case("compile-fps-zero", ("compile", "{B}", "--target-fps", "0"),
         r"target_fps=0.0 is not valid", state="exported"),
    Case("compile-fps-negative", ("compile", "{B}", "--target-fps", "-5"),
         r"target_fps=-5.0 is not valid", state="exported"),
    Case("compile-fps-not-a-number", ("compile", "{B}", "--target-fps", "fast"),
         r"'fast' is not a valid float", state="exported"),
    Case("compile-folding-missing", ("compile", "{B}", "--folding", "{T}/f.json"),
         r"folding file .*f.json not found", state="exported"),
    Case("compile-folding-bad-json", ("compile", "{B}", "--folding", "{T}/f.json"),
         r"is not valid JSON", state="exported", prepare=write("f.json", "{PE: 2", where="T")),
    Case("compile-folding-not-a-config", ("compile", "{B}", "--folding", "{T}/f.json"),
         r"is not a FINN folding config", state="exported",
         prepare=write("f.json", "[1, 2]", where="T")),
    Case("compile-folding-unknown-layer", ("compile", "{B}", "--folding", "{T}/f.json"),
         r"folding file names unknown layers: MVAU_99", state="exported",
         prepare=write("f.json", '{"MVAU_99": {"PE": 2}}', where="T")),
    Case("compile-folding-does-not-divide", ("compile", "{B}", "--folding", "{T}/f.json"),
         r"SIMD=7 must divide MW", state="exported",
         prepare=write("f.json", '{"Defaults": {"SIMD": [7, ["MVAU_hls"]]}}', where="T")),
    Case("compile-acc-bits-range", ("compile", "{B}", "--acc-bits", "40"),
         r"acc_bits=40 is not valid", state="exported"),
    Case("compile-acc-bits-too-narrow", ("compile", "{B}", "--acc-bits", "8"),
         r"--acc-bits 8 would overflow: layer .* needs \d+ bits.*\n.*use --acc-bits \d+ or more",
         state="exported"),
    Case("compile-not-exported", ("compile", "{B}"), r"model.qonnx.onnx not found.*\n.*export",
         state="trained"),
    Case("compile-malformed-onnx", ("compile", "{B}"), r"is not a readable ONNX model",
         state="exported", prepare=write("model.qonnx.onnx", b"\x08\x07garbage")),
    Case("compile-empty-onnx", ("compile", "{B}"), r"(not a readable ONNX model|holds no graph)",
         state="exported", prepare=write("model.qonnx.onnx", b"")),
    Case("compile-foreign-onnx", ("compile", "{B}"), r"has no 'a2qflow.layers' metadata",
         state="exported",
         prepare=lambda b, t: _strip_metadata(b / "model.qonnx.onnx")),
    Case("compile-no-build-dir", ("compile", "{B}"), r"does not exist"),
    Case("compile-into-a-file", ("compile", "{B}"), r"is a file", state="file"),
    Case("compile-locked", ("compile", "{B}"), r"in use by pid \d+", state="exported",
         hold_lock=True),
    # --- verify ----------------------------------------------------------------------------
    Case("verify-not-compiled", ("verify", "{B}"), r"certificate.json not found.*\n.*compile",
         state="exported"),
    Case("verify-corrupt-certificate", ("verify", "{B}"), r"certificate.json .*not valid JSON",
         state="compiled", prepare=write("certificate.json", "{oops")),
    Case("verify-missing-hw-model", ("verify", "{B}"), r"certify_accumulators.onnx not found",
         state="compiled", prepare=remove(layout.HW_MODEL)),
    Case("verify-corrupt-hw-model", ("verify", "{B}"), r"not a readable ONNX model",
         state="compiled", prepare=write(layout.HW_MODEL, b"\x08garbage")),
    Case("verify-corrupt-checkpoint", ("verify", "{B}"), r"corrupt or not a torch file",
         state="compiled", prepare=write("checkpoint.pt", b"garbage")),
    Case("verify-certificate-narrower", ("verify", "{B}"), r"widths disagree", state="compiled",
         prepare=edit_json("certificate.json",
                           lambda c: c["layers"][0].update(acc_datatype="INT2"))),
    Case("verify-certificate-layer-missing", ("verify", "{B}"),
         r"MVAU/VVAU layers.*certified in the graph", state="compiled",
         prepare=edit_json("certificate.json", lambda c: c["layers"].pop())),
    Case("verify-certificate-exact-edited", ("verify", "{B}"), r"recorded exact width",
         state="compiled",
         prepare=edit_json("certificate.json", lambda c: c["layers"][0].update(exact_bits=3))),
    # --- rtl -------------------------------------------------------------------------------
    Case("rtl-not-compiled", ("rtl", "{B}"), r"compile.json not found.*\n.*compile",
         state="exported"),
    Case("rtl-compare-range", ("rtl", "{B}", "--compare-acc-bits", "40"),
         r"compare_acc_bits=40 is not valid", state="compiled"),
    Case("rtl-compare-too-narrow", ("rtl", "{B}", "--compare-acc-bits", "1"),
         r"compare_acc_bits=1 is not valid", state="compiled"),
    Case("rtl-max-images-zero", ("rtl", "{B}", "--max-images", "0"),
         r"0 is not in the range x>=1", state="compiled"),
    Case("rtl-missing-folded-model", ("rtl", "{B}"), r"07_folding.onnx not found",
         state="compiled", prepare=remove(layout.FOLDED_MODEL)),
    Case("rtl-no-build-dir", ("rtl", "{B}"), r"does not exist"),
    # --- synth -----------------------------------------------------------------------------
    Case("synth-not-verified", ("synth", "{B}"), r"verify.json not found.*\n.*a2qflow verify",
         state="compiled"),
    Case("synth-verify-failed", ("synth", "{B}"), r"verify.json records a failed check",
         state="simulated", prepare=edit_json("verify.json", lambda v: v.update(ok=False))),
    Case("synth-verify-stale", ("synth", "{B}"),
         r"verify.json is out of date: certificate.json changed", state="simulated",
         prepare=edit_json("certificate.json", lambda c: c.update(edited=True))),
    Case("synth-verify-without-inputs", ("synth", "{B}"), r"does not record its inputs",
         state="simulated", prepare=edit_json("verify.json", lambda v: v.pop("inputs"))),
    Case("synth-not-simulated", ("synth", "{B}"), r"sim.json not found.*\n.*a2qflow rtl",
         state="simulated", prepare=remove("sim.json")),
    Case("synth-sim-failed", ("synth", "{B}"), r"sim.json records a failed check",
         state="simulated", prepare=edit_json("sim.json", lambda v: v.update(ok=False))),
    Case("synth-rtl-edited", ("synth", "{B}"), r"rtl changed after it was simulated",
         state="simulated", prepare=append("rtl/a2q_top.v", "// edited\n")),
    Case("synth-rtl-missing", ("synth", "{B}"), r"rtl not found.*\n.*run `a2qflow rtl` first",
         state="simulated", prepare=remove(layout.RTL_DIR)),
    Case("synth-unknown-board", ("synth", "{B}", "--board", "nope"), r"unknown board 'nope'",
         state="simulated"),
    Case("synth-cache-is-a-file", ("synth", "{B}", "--cache-dir", "{T}/cache"),
         r"cannot create the synthesis cache", state="simulated",
         prepare=write("cache", "a file", where="T")),
    Case("synth-no-build-dir", ("synth", "{B}"), r"does not exist"),
    Case("synth-limit-not-positive", ("synth", "{B}", "--synth-layer-limit-s", "0"),
         r"synth_layer_limit_s=0.0 is not valid", state="simulated"),
    Case("synth-module-past-its-limit",
         ("synth", "{B}", "--synth-layer-limit-s", "0.01", "--cache-dir", "{T}/cache"),
         r"ran past its limit of 0.01 s.*\n.*--synth-layer-limit-s", state="simulated"),
    # --- bitstream -------------------------------------------------------------------------
    Case("bitstream-no-vivado", ("bitstream", "{B}"), r"XILINX_VIVADO is not set",
         state="simulated", env=NO_VIVADO),
    Case("bitstream-fake-vivado", ("bitstream", "{B}"),
         r"XILINX_VIVADO=.* has no bin/vivado", state="simulated",
         env={"XILINX_VIVADO": "/nonexistent/Vivado/2024.2", "XILINX_HLS": None}),
    Case("bitstream-vivado-without-hls", ("bitstream", "{B}"),
         r"Vitis HLS not found: XILINX_HLS is not set", state="simulated",
         prepare=fake_vivado, env={"XILINX_VIVADO": "{T}/vivado", "XILINX_HLS": None,
                                   "PATH": "/usr/bin:/bin"}),
    Case("bitstream-ecp5-board", ("bitstream", "{B}", "--board", "ulx3s-85f"),
         r"ulx3s-85f is a Lattice ECP5 board.*\n.*a2qflow pnr", state="simulated"),
    # --- pnr -------------------------------------------------------------------------------
    Case("pnr-xilinx-board", ("pnr", "{B}"), r"board 'pynq-z1' is not an ECP5 board",
         state="simulated"),
    Case("pnr-not-verified", ("pnr", "{B}", "--board", "ulx3s-85f"),
         r"verify.json not found", state="compiled"),
    Case("pnr-rtl-edited", ("pnr", "{B}", "--board", "ulx3s-85f"),
         r"rtl changed after it was simulated", state="simulated",
         prepare=append("rtl/a2q_top.v", "// edited\n")),
    Case("pnr-compare-range", ("pnr", "{B}", "--compare-acc-bits", "40"),
         r"40 is not in the range 0<=x<=32", state="simulated"),
    Case("pnr-no-build-dir", ("pnr", "{B}"), r"does not exist"),
    # --- build -----------------------------------------------------------------------------
    Case("build-config-missing", ("build", "{T}/none.yaml", "--build-dir", "{B}"),
         r"build config not found"),
    Case("build-config-bad-yaml", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"is not valid YAML", prepare=yaml_config("model: {arch: tfc\n")),
    Case("build-config-not-a-mapping", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"expected a mapping", prepare=yaml_config("- 1\n- 2\n")),
    Case("build-config-unknown-section", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"unknown field 'hardwear'", prepare=yaml_config(GOOD_MODEL + "hardwear: {}\n")),
    Case("build-config-model-not-mapping", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"model must be a mapping", prepare=yaml_config("model: [tfc]\n")),
    Case("build-config-bad-quant", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"model: quant='a3q' is not valid", prepare=yaml_config("model: {quant: a3q}\n")),
    Case("build-config-fps-not-a-number", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"hardware: target_fps='fast' is not valid",
         prepare=yaml_config(GOOD_MODEL + "hardware: {target_fps: fast}\n")),
    Case("build-config-unknown-board", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"hardware: unknown board 'zedboard'",
         prepare=yaml_config(GOOD_MODEL + "hardware: {board: zedboard}\n")),
    Case("build-config-board-not-a-name", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"hardware: board=3 is not valid",
         prepare=yaml_config(GOOD_MODEL + "hardware: {board: 3}\n")),
    Case("build-config-folding-missing", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"hardware: folding file .*nofold.json not found",
         prepare=yaml_config(GOOD_MODEL + "hardware: {folding: nofold.json}\n")),
    Case("build-config-compare-range", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"hardware: compare_acc_bits=64 is not valid",
         prepare=yaml_config(GOOD_MODEL + "hardware: {compare_acc_bits: 64}\n")),
    Case("build-config-stages-not-list", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"stages must be a list", prepare=yaml_config(GOOD_MODEL + "stages: train\n")),
    Case("build-config-unknown-stage", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"unknown stage 'deploy'", prepare=yaml_config(GOOD_MODEL + "stages: [train, deploy]\n")),
    Case("build-config-epochs-negative", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"train: float_epochs=-3 is not valid",
         prepare=yaml_config("train: {float_epochs: -3}\n")),
    Case("build-config-train-field-type", ("build", "{T}/c.yaml", "--build-dir", "{B}"),
         r"train: distill_alpha='half'",
         prepare=yaml_config("train: {distill_alpha: half}\n")),
    Case("build-flag-fps-above-clock", ("build", "--target-fps", "1e12", "--build-dir", "{B}"),
         r"target_fps=1e\+12 is above the maximum"),
    Case("build-flag-unknown-board", ("build", "--board", "nope", "--build-dir", "{B}"),
         r"unknown board 'nope'"),
    Case("build-flag-pnr-on-xilinx", ("build", "--stages", "train,pnr", "--build-dir", "{B}"),
         r"pnr needs an ECP5 board \(board is pynq-z2\)"),
    Case("build-flag-unknown-stage", ("build", "--stages", "train,bogus", "--build-dir", "{B}"),
         r"unknown stage 'bogus'"),
    Case("build-flag-force-acc-bits-range", ("build", "--force-acc-bits", "99", "--build-dir",
                                             "{B}"), r"acc_bits=99 is not valid"),
    Case("build-flag-infeasible-p", ("build", "-P", "4", "--build-dir", "{B}"),
         r"P=4 is infeasible"),
    Case("build-into-a-file", ("build", "--build-dir", "{B}", "--stages", "train"),
         r"is a file", state="file"),
    Case("build-into-unwritable", ("build", "--build-dir", "{B}", "--stages", "train"),
         r"cannot write to build directory", state="unwritable"),
    Case("build-locked", ("build", "--build-dir", "{B}", "--stages", "train"),
         r"in use by pid \d+", state="exported", hold_lock=True),
    # --- import ------------------------------------------------------------------------------
    Case("import-missing-file", ("import", "{T}/none.onnx", "{B}"), r"model file .* not found"),
    Case("import-truncated", ("import", "{T}/m.onnx", "{B}"), r"is not a readable ONNX model",
         prepare=lambda b, t: _foreign_onnx(t / "m.onnx", truncate=True)),
    Case("import-not-onnx", ("import", "{T}/m.onnx", "{B}"), r"is not a readable ONNX model",
         prepare=write("m.onnx", "name: not onnx\n", where="T")),
    Case("import-float-onnx", ("import", "{T}/m.onnx", "{B}"),
         r"float ONNX model: it has no QONNX Quant nodes", prepare=lambda b, t: _float_onnx(t)),
    Case("import-unmappable-op", ("import", "{T}/m.onnx", "{B}"),
         r"FINN cannot map head \(Softmax\)",
         prepare=lambda b, t: _foreign_onnx(t / "m.onnx", softmax=True)),
    Case("import-trained-p-format", ("import", "{T}/m.onnx", "{B}", "--trained-p", "fc2"),
         r"--trained-p 'fc2' is not LAYER=P",
         prepare=lambda b, t: _foreign_onnx(t / "m.onnx")),
    Case("import-trained-p-range", ("import", "{T}/m.onnx", "{B}", "--trained-p", "fc2=99"),
         r"--trained-p fc2=99 is not valid", prepare=lambda b, t: _foreign_onnx(t / "m.onnx")),
    Case("import-trained-p-unknown-layer", ("import", "{T}/m.onnx", "{B}", "--trained-p",
                                            "fc9=12"),
         r"names unknown layers: fc9.*\n.*fc1, fc2", prepare=lambda b, t: _foreign_onnx(
             t / "m.onnx")),
    Case("import-trained-p-too-narrow", ("import", "{T}/m.onnx", "{B}", "--trained-p", "fc1=8"),
         r"layer fc1 .* need \d+ accumulator bits, more than the --trained-p 8",
         prepare=lambda b, t: _foreign_onnx(t / "m.onnx")),
    Case("import-samples-missing", ("import", "{T}/m.onnx", "{B}", "--samples", "{T}/s.npz"),
         r"samples file .* not found", prepare=lambda b, t: _foreign_onnx(t / "m.onnx")),
    Case("import-samples-no-x", ("import", "{T}/m.onnx", "{B}", "--samples", "{T}/s.npz"),
         r"has no array 'x'", prepare=lambda b, t: (_foreign_onnx(t / "m.onnx"),
                                                    np.savez(t / "s.npz", inputs=np.zeros(3)))),
    Case("import-samples-wrong-shape", ("import", "{T}/m.onnx", "{B}", "--samples",
                                        "{T}/s.npz"),
         r"samples have shape \[3\] per input but the model takes \[4\]",
         prepare=lambda b, t: (_foreign_onnx(t / "m.onnx"),
                               np.savez(t / "s.npz", x=np.zeros((2, 3), np.float32)))),
    Case("import-over-a-trained-build", ("import", "{T}/m.onnx", "{B}"),
         r"holds a model a2qflow trained \(checkpoint.pt\)", state="exported",
         prepare=lambda b, t: _foreign_onnx(t / "m.onnx")),
    Case("build-model-missing", ("build", "--model", "{T}/none.onnx", "--build-dir", "{B}"),
         r"import: model file .*none.onnx not found"),
    Case("build-model-with-train-stage", ("build", "--model", "{T}/m.onnx", "--stages",
                                          "train,compile", "--build-dir", "{B}"),
         r"'train' does not belong in an imported build",
         prepare=lambda b, t: _foreign_onnx(t / "m.onnx")),
    # --- sweep, bounds, report -------------------------------------------------------------
    Case("sweep-bad-widths", ("sweep", "{T}/c.yaml", "--acc-bits", "a,b", "--out", "{B}"),
         r"is not a list of integers", prepare=yaml_config(GOOD_MODEL)),
    Case("sweep-bad-quant", ("sweep", "{T}/c.yaml", "--quant", "a3q", "--out", "{B}"),
         r"'a3q' is not valid", prepare=yaml_config(GOOD_MODEL)),
    Case("sweep-config-missing", ("sweep", "{T}/none.yaml", "--out", "{B}"),
         r"build config not found"),
    Case("bounds-acc-bits-range", ("bounds", "--acc-bits", "1", "--input-bits", "4"),
         r"1 is not in the range 2<=x<=32"),
    Case("bounds-missing-input-bits", ("bounds", "--acc-bits", "12"),
         r"Missing option '--input-bits'"),
    Case("report-no-builds", ("report", "{B}"), r"is not a build directory", state="empty"),
    Case("compare-missing-build", ("compare", "{B}", "{T}/other"), r"not a build directory",
         state="exported"),
]


def _foreign_onnx(path: Path, truncate: bool = False, softmax: bool = False) -> None:
    """A 4-8-3 MLP exported by brevitas alone (layers fc1, fc2)."""
    import warnings

    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import Uint8ActPerTensorFloat

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat,
                                         return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(4, 8, bias=False, weight_bit_width=4)
            self.act = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(8, 3, bias=False, weight_bit_width=4)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(self.inp(x))))

    torch.manual_seed(0)
    model = Tiny().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(torch.rand(1, 4))
        export_qonnx(model, input_t=torch.rand(1, 4), export_path=str(path), dynamo=False)
    if softmax:
        import onnx

        proto = onnx.load(str(path))
        proto.graph.node.append(onnx.helper.make_node(
            "Softmax", [proto.graph.output[0].name], ["probs"], name="head"))
        proto.graph.output[0].name = "probs"
        onnx.save(proto, str(path))
    if truncate:
        path.write_bytes(path.read_bytes()[:300])


def _float_onnx(tmp: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Linear(4, 2), torch.rand(1, 4), str(tmp / "m.onnx"),
                          dynamo=False)


def _strip_metadata(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    del model.graph.metadata_props[:]
    onnx.save(model, str(path))


def snapshot(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {str(root): hashlib.sha256(root.read_bytes()).hexdigest()} if root.is_file() \
            else {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def states(trained_build, compiled_small, simulated_small) -> dict[str, Path]:
    return {"trained": trained_build(quant="a2q+", acc_bits=12, exported=False, hidden=16),
            "exported": trained_build(quant="a2q+", acc_bits=12, hidden=16),
            "compiled": compiled_small, "simulated": simulated_small}


def fill(text: str, build: Path, tmp: Path) -> str:
    return text.replace("{B}", str(build)).replace("{T}", str(tmp))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_message_and_leaves_artifacts_intact(case, states, tmp_path):
    build = tmp_path / "build"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.state in states:
        shutil.copytree(states[case.state], build)
        (build / layout.SYNTH_JSON).unlink(missing_ok=True)  # other tests may have added it
    elif case.state == "empty":
        build.mkdir()
    elif case.state == "file":
        build.write_text("not a directory\n")
    elif case.state == "unwritable":
        build = UNWRITABLE
    if case.prepare is not None:
        case.prepare(build, scratch)
    before = snapshot(build)
    env = {k: (fill(v, build, scratch) if v else v) for k, v in case.env.items()}
    with contextlib.ExitStack() as stack:
        if case.hold_lock:
            (build / layout.STATE_DIR).mkdir(exist_ok=True)
            lock = stack.enter_context(open(build / layout.LOCK_FILE, "a+"))
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.write("pid 4242 (a test holding the lock)")
            lock.flush()
            before = snapshot(build)
        result = CliRunner().invoke(cli, [fill(a, build, scratch) for a in case.args], env=env)
    output = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}\n{output}\n{result.exc_info}"
    assert "Traceback" not in output
    assert re.search(case.expect, output), output
    after = snapshot(build)
    changed = [p for p, h in before.items() if after.get(p) != h]
    added = [p for p in set(after) - set(before) if not any(r.search(p) for r in ALLOWED_NEW)]
    assert not changed and not added, (changed, added)
    RESULTS.append({"id": case.id, "command": " ".join(_shown(a) for a in case.args),
                    "state": case.state,
                    "message": _message(output, build, scratch)})


def _shown(arg: str) -> str:
    return arg.replace("{B}", "BUILD").replace("{T}/", "")


def _message(output: str, build: Path, scratch: Path) -> str:
    text = output.replace(str(build), "BUILD").replace(str(scratch) + "/", "")
    lines = [ln.strip() for ln in text.strip().splitlines()
             if ln.strip() and not ln.startswith(("Usage:", "Try "))]
    return " / ".join(lines)[:400]


def test_the_bad_input_table_lists_every_case():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)
    documented = TABLE.read_text() if TABLE.is_file() else ""
    missing = [c.id for c in CASES if f"`{c.id}`" not in documented]
    assert not missing, (f"{TABLE} is missing {missing}; regenerate it with `pytest "
                         "tests/test_bad_input.py --bad-input-table docs/bad-input.md`")


@pytest.fixture(scope="session", autouse=True)
def write_bad_input_table(request):
    yield
    target = request.config.getoption("--bad-input-table")
    if not target or not RESULTS:
        return
    by_id = {r["id"]: r for r in RESULTS}
    rows = ["# Bad input: what a2qflow says", "",
            f"Generated from `tests/test_bad_input.py` ({len(by_id)} cases, every one run by "
            "`make test`): each is the real CLI on a real build directory in the stated "
            "state; each exits with status 2, prints one problem and its fix, and leaves every "
            "file that existed unchanged (checked by hashing the directory before and after). "
            "`BUILD` is the build directory; click's own usage errors (a value that is not a "
            "number, not one of the choices) print click's message.", "",
            "| case | command | build state | message |", "|---|---|---|---|"]
    for case in CASES:
        r = by_id.get(case.id)
        if r is None:
            continue
        cell = r["message"].replace("|", "\\|")
        rows.append(f"| `{case.id}` | `a2qflow {r['command']}` | {r['state']} | {cell} |")
    Path(target).write_text("\n".join(rows) + "\n")
