"""Shared by the benchmarks: provenance (command, machine) and one training point."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from a2qflow import train
from a2qflow.artifacts import read_json
from a2qflow.config import ModelSpec, TrainConfig
from a2qflow.errors import A2QFlowError


def command_line(argv: list[str] | None) -> str:
    args = [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]
    return "python " + " ".join(shlex.quote(a) for a in args)


def machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": "cpu"}


def results_table(rows: list[dict[str, Any]], label: str, float_acc: float) -> list[str]:
    """Markdown rows of trained points: accuracy against float and the per-layer evidence."""
    lines = [f"| {label} | P | test acc | vs float | % of float | exact bits per layer "
             "| zeros per layer | <= P |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.get("acc") is None:
            lines.append(f"| {row[label]} | {row['acc_bits']} | failed: {row['error']} "
                         "| | | | | |")
            continue
        lines.append(
            f"| {row[label]} | {row['acc_bits']} | {row['acc']:.2%} | "
            f"{(row['acc'] - float_acc) * 100:+.2f} pt | {row['acc'] / float_acc:.1%} | "
            f"{row['exact_bits']} | {row['sparsity']} | "
            f"{'yes' if row['within_target'] else 'NO'} |")
    return lines


def trained(spec: ModelSpec, cfg: TrainConfig, out: Path,
            init_from: Path | None = None) -> dict[str, Any]:
    """``train.run`` into ``out``, or its ``train.json`` read back where it already exists, so
    long benchmarks resume after an interruption and can be split across processes."""
    done = out / "train.json"
    if done.exists():
        print(f"    reusing {out}", flush=True)
        return read_json(done, "training summary", "a2qflow train")
    return train.run(spec, cfg, out, init_from=init_from)


def train_point(spec: ModelSpec, cfg: TrainConfig, out: Path, init_from: Path,
                **labels: Any) -> dict[str, Any]:
    """Train one point warm-started from ``init_from`` (or reuse it, see :func:`trained`);
    a failure becomes a row, not a crash."""
    try:
        r = trained(spec, cfg, out, init_from)
    except A2QFlowError as exc:
        return {**labels, "acc": None, "error": exc.problem}
    layers = r["layers"]
    return {**labels, "acc": r["quant_test_acc"], "seconds": r["seconds"],
            "exact_bits": [x["exact_bits"] for x in layers],
            "target_bits": [x["acc_bits"] for x in layers],
            "sparsity": [round(x["sparsity"], 3) for x in layers],
            "within_target": all(x["acc_bits"] is None or x["exact_bits"] <= x["acc_bits"]
                                 for x in layers)}
