"""FINN's analytical estimates (resources, cycles, throughput) with utilization on a board.

These are FINN's models, not synthesis: FINN caps its accumulator term by the data-type bound,
so its LUT estimate barely moves with the accumulator width (README, "Known limits of the
estimates"). Labelled as such.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.boards import RESOURCE_KEYS, Board
from a2qflow.graph import dataflow_core

# FINN's resource keys -> the board catalogue's
_FINN_KEYS = {"LUT": "LUT", "BRAM_18K": "BRAM18", "URAM": "URAM", "DSP": "DSP", "FF": "FF"}


def finn_estimates(model: ModelWrapper, board: Board) -> tuple[ModelWrapper, dict[str, Any]]:
    """Per-layer resources and cycles, totals, utilization and dataflow performance."""
    from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles

    resources = model.analysis(lambda m: res_estimation(m, board.part))
    cycles = model.analysis(exp_cycles_per_layer)
    layers = {}
    for name, res in resources.items():
        entry = {_FINN_KEYS[k]: float(v) for k, v in res.items() if k in _FINN_KEYS}
        entry["cycles"] = int(cycles.get(name, 0))
        entry["op_type"] = model.get_node_from_name(name).op_type
        layers[name] = entry
    # FINN estimates no flip-flops: keys no layer reports stay None, not a misleading 0
    total = {key: (sum(layer.get(key, 0.0) for layer in layers.values())
                   if any(key in layer for layer in layers.values()) else None)
             for key in RESOURCE_KEYS}
    core = dataflow_core(model).transform(AnnotateCycles())
    perf = core.analysis(dataflow_performance)
    max_cycles = int(perf["max_cycles"])
    performance = {
        "max_cycles": max_cycles,
        "max_cycles_node": perf["max_cycles_node_name"],
        "critical_path_cycles": int(perf["critical_path_cycles"]),
        "clock_ns": board.clock_ns,
        "estimated_throughput_fps": 1e9 / board.clock_ns / max_cycles if max_cycles else None,
        "estimated_latency_ns": int(perf["critical_path_cycles"]) * board.clock_ns,
    }
    utilization = {k: (None if total[k] is None else v)
                   for k, v in board.utilization(
                       {k: v for k, v in total.items() if v is not None}).items()}
    return model, {
        "tool": f"FINN {version('finn-plus')} analytical estimates (not synthesis"
                + ("; FINN's Xilinx LUT/BRAM models, it has none for ECP5)" if board.is_ecp5
                   else ")"),
        "board": board.name,
        "part": board.part,
        "board_resources": dict(board.resources),
        "layers": layers,
        "total": total,
        "utilization": utilization,
        "performance": performance,
        "warnings": capacity_warnings(utilization, board),
    }


def capacity_warnings(utilization: dict[str, float | None], board: Board) -> list[str]:
    """One line per resource the estimate puts above the board's capacity (it will not fit)."""
    return [f"FINN estimates {key} at {used:.1%} of {board.name}'s {board.resources[key]:,}: "
            f"the design does not fit; fold less (a lower --target-fps or smaller PE/SIMD) or "
            f"pick a larger board"
            for key, used in utilization.items() if used is not None and used > 1.0]

