"""Gather builds for a report: plain data from the artifacts, no plotting, no HTML.

A directory is a build (it has ``train.json``) or a sweep (it has ``sweep.json`` naming its
builds). Every resource figure keeps the name of the tool that produced it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a2qflow.errors import A2QFlowError
from a2qflow.summary import summarize, trained_record

RESOURCES = ("LUT", "FF", "DSP", "BRAM18", "CARRY")


@dataclass
class BuildView:
    """One build as the report sees it."""

    name: str
    path: Path
    spec: dict[str, Any]
    acc: float | None
    float_acc: float | None
    layers: list[dict[str, Any]]
    certificate: dict[str, Any] | None
    resources: dict[str, float | None] = field(default_factory=dict)  # at certified widths
    resources_ref: dict[str, float | None] = field(default_factory=dict)  # at compare width
    ref_bits: int | None = None
    resource_source: str | None = None  # e.g. "Yosys 0.70 estimate" / "FINN estimate"
    utilization: dict[str, float | None] = field(default_factory=dict)
    board: str | None = None
    error: str | None = None
    method: str = "qat"  # how the weights were quantized: QAT (with its recipe) or AXE PTQ
    warnings: list[str] = field(default_factory=list)  # e.g. FINN estimates over capacity
    pnr: dict[str, Any] | None = None  # ECP5: nextpnr's routed figures and Fmax (pnr.json)

    @property
    def quant(self) -> str:
        return self.spec.get("quant", "?")

    @property
    def acc_bits(self) -> int | None:
        return self.spec.get("acc_bits")


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def load_build(path: Path, name: str | None = None) -> BuildView:
    path = Path(path)
    train = trained_record(path)
    if train is None:
        raise A2QFlowError(f"{path} is not a build directory (no train.json or import.json)",
                           "pass a build directory or a sweep directory (with sweep.json)")
    s = summarize(path)
    view = BuildView(name=name or path.name, path=path, spec=train["spec"], acc=s["acc"],
                     float_acc=s["float_acc"], layers=train["layers"],
                     certificate=s["certificate"],
                     method=_method(train),
                     warnings=list((s.get("estimates") or {}).get("warnings", [])),
                     pnr=s.get("pnr"))
    attach_resources(view, s)
    return view


def _method(train: dict[str, Any]) -> str:
    """'qat (standard)', 'qat (reproject+distill)', 'axe-gpfq', ... from train.json."""
    method = (train.get("config") or {}).get("method", "qat")
    return f"{method} ({train.get('recipe', 'standard')})" if method == "qat" else method


ROUTED_AS = {"LUT4": "LUT", "FF": "FF", "MULT18": "DSP", "EBR": "BRAM18"}  # ECP5 -> columns


def _routed(variant: dict[str, Any]) -> dict[str, float]:
    """An ECP5 variant's routed cells under the report's column names (LUT = LUT4 sites,
    DSP = MULT18, BRAM18 = EBR); the source label says which family they count."""
    return {col: variant["routed"][cell] for cell, col in ROUTED_AS.items()
            if cell in variant["routed"]}


def attach_resources(view: BuildView, s: dict[str, Any]) -> None:
    """Routed figures when placed and routed (ECP5), else synthesis results (Yosys or
    Vivado), else FINN's estimates; always labelled with what produced them."""
    synth, est, placed = s.get("synth"), s.get("estimates"), s.get("pnr")
    if placed:
        certified = placed["variants"]["certified"]
        view.resources = _routed(certified)
        view.resource_source = f"{placed['label']} (LUT = LUT4, DSP = MULT18, BRAM18 = EBR)"
        ref_bits = placed.get("compare_acc_bits")
        if ref_bits is not None and f"acc{ref_bits}" in placed["variants"]:
            view.resources_ref = _routed(placed["variants"][f"acc{ref_bits}"])
            view.ref_bits = ref_bits
        view.utilization = {ROUTED_AS[k]: v for k, v in certified["utilization"].items()
                            if k in ROUTED_AS}
        view.board = placed.get("board")
    elif synth:
        certified = synth["variants"]["certified"]
        view.resources = dict(certified["total"])
        view.resource_source = f"{synth['tool']} estimate" if synth.get("flow") != "vivado" \
            else synth["tool"]
        ref_bits = synth.get("compare_acc_bits")
        if ref_bits is not None:
            view.resources_ref = dict(synth["variants"][f"acc{ref_bits}"]["total"])
            view.ref_bits = ref_bits
        view.utilization = dict(certified.get("utilization", {}))
        view.board = synth.get("board")
    elif est:
        view.resources = dict(est.get("total", {}))
        view.resource_source = est.get("tool", "FINN estimate")
        view.utilization = dict(est.get("utilization", {}))
        view.board = est.get("board")


def load_dirs(dirs: list[Path]) -> list[BuildView]:
    """Builds from every directory; a sweep contributes all its points (failed ones too)."""
    views: list[BuildView] = []
    for d in map(Path, dirs):
        sweep = _read(d / "sweep.json")
        if sweep is None:
            views.append(load_build(d))
            continue
        for point in sweep["points"]:
            if point["status"] == "ok":
                views.append(load_build(d / point["build_dir"], point["name"]))
            else:
                views.append(BuildView(name=point["name"], path=d / point["build_dir"],
                                       spec={"quant": point["quant"],
                                             "acc_bits": point["acc_bits"]},
                                       acc=None, float_acc=None, layers=[], certificate=None,
                                       error=point.get("error")))
    if not views:
        raise A2QFlowError("no builds found", "pass build or sweep directories")
    return views


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """(cost, accuracy, name) points not dominated by a cheaper, at least as accurate one."""
    front, best = [], -math.inf
    for cost, acc, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc, name))
            best = acc
    return front


def compressed_weight_bits(k: int, channels: int, weight_bits: int, sparsity: float) -> dict:
    """Dense vs sparse storage of one layer's weights.

    Scheme (stated in the report): dense = K*C*M bits; sparse = per non-zero weight its M-bit
    value plus a ceil(log2 K)-bit column index, plus a ceil(log2(K+1))-bit count per channel
    (compressed sparse rows). The smaller of the two is what a weight memory would hold.
    """
    dense = k * channels * weight_bits
    nnz = round((1.0 - sparsity) * k * channels)
    index_bits = max(1, math.ceil(math.log2(k)))
    sparse = nnz * (weight_bits + index_bits) + channels * math.ceil(math.log2(k + 1))
    return {"dense_bits": dense, "sparse_bits": sparse, "nnz": nnz,
            "best_bits": min(dense, sparse)}


def channel_width_summary(cert: dict[str, Any]) -> list[dict[str, Any]]:
    """Per layer of a certificate: min/median/max of its channels' exact widths, and the
    accumulator bits one per-layer width wastes at the channel roots (sum over channels of the
    layer's exact width minus the channel's): where per-channel sizing pays."""
    rows = []
    for e in cert.get("layers", []):
        bits = sorted(e.get("channel_exact_bits") or [])
        if not bits:
            continue
        rows.append({"layer": e["layer"], "channels": len(bits), "layer_bits": e["exact_bits"],
                     "chosen_bits": e["chosen_bits"], "min": bits[0],
                     "median": bits[len(bits) // 2], "max": bits[-1],
                     "root_bits_saved": sum(e["exact_bits"] - b for b in bits)})
    return rows
