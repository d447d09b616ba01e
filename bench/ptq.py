"""Accumulator-aware PTQ (AXE-GPFQ, AXE-GPTQ) against A2Q+ QAT, from one float model (issue #15).

Every point is a real ``a2qflow train`` run into ``--out`` warm-started from the same float
checkpoint, and passes the train stage's checks (exact width <= P per constrained layer, no
all-zero layer) or is reported as failed. Points already in ``--out`` are read back, so a run
resumes. Writes ``results.json``, ``results.md`` (command, machine, budget, table) and
``ptq.png`` into ``--out``.

  python bench/ptq.py --dataset mnist --data-dir ../shared/data/mnist --out bench/out/ptq_tfc \\
      --acc-bits 16,14,12,10 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import command_line, machine, train_point, trained  # noqa: E402

from a2qflow.artifacts import atomic_path, read_json, write_json, write_text  # noqa: E402
from a2qflow.config import ModelSpec, TrainConfig  # noqa: E402

QAT_RECIPES = {"qat-standard": {}, "qat-reproject": {"reproject_every": 20}}
# axe-*: a2qflow's default, per-channel scales fitted to the calibration data; axe-*-max:
# brevitas's AXE as shipped (max|w| scales). Sections of RESULTS.md written before fitted
# scales existed label brevitas's AXE "axe-gpfq"/"axe-gptq".
AXE_METHODS = {"axe-gpfq": ("axe-gpfq", "fitted"), "axe-gptq": ("axe-gptq", "fitted"),
               "axe-gpfq-max": ("axe-gpfq", "max"), "axe-gptq-max": ("axe-gptq", "max")}
METHODS = [*AXE_METHODS, *QAT_RECIPES]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="tfc", choices=["tfc", "cnv"])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="bench/out/ptq_tfc")
    p.add_argument("--acc-bits", default="16,14,12,10")
    p.add_argument("--methods", default="axe-gpfq,axe-gptq,qat-standard",
                   help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--float-epochs", type=int, default=10)
    p.add_argument("--qat-epochs", type=int, default=10)
    p.add_argument("--calibration-samples", type=int, default=1024)
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="also AXE-GPFQ followed by this many QAT epochs (0: not run)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only-existing", action="store_true",
                   help="train nothing: tabulate the points already in --out")
    return p.parse_args(argv)


def point(spec: ModelSpec, cfg: TrainConfig, out: Path, init_from: Path,
          **labels: Any) -> dict[str, Any]:
    """One trained point (see ``common.train_point``) plus AXE's own time and accuracy."""
    row = train_point(spec, cfg, out, init_from, **labels)
    ptq = {} if row["acc"] is None else (
        read_json(out / "train.json", "training summary", "a2qflow train").get("ptq") or {})
    return {**row, "quantize_seconds": ptq.get("seconds"), "axe_acc": ptq.get("test_acc")}


def table(rows: list[dict[str, Any]], float_acc: float) -> list[str]:
    lines = ["| method | P | test acc | % of float | exact bits per layer | zeros per layer "
             "| <= P | train stage s | of which AXE s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("acc") is None:
            lines.append(f"| {r['method']} | {r['acc_bits']} | failed: {r['error']} "
                         "| | | | | | |")
            continue
        axe_s = "" if r["quantize_seconds"] is None else f"{r['quantize_seconds']:.1f}"
        lines.append(
            f"| {r['method']} | {r['acc_bits']} | {r['acc']:.2%} | {r['acc'] / float_acc:.1%} "
            f"| {r['exact_bits']} | {r['sparsity']} | {'yes' if r['within_target'] else 'NO'} "
            f"| {r['seconds']:.1f} | {axe_s} |")
    return lines


def below_95(rows: list[dict[str, Any]], float_acc: float) -> list[str]:
    """Per method, the widest P (of those run) where accuracy falls below 95% of float."""
    lines = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: -r["acc_bits"])
        low = [r["acc_bits"] for r in mine if (r["acc"] or 0.0) < 0.95 * float_acc]
        lines.append(f"- {method}: " + (f"below 95% of float from P={low[0]}" if low else
                                        f"at or above 95% of float at every P run "
                                        f"(down to P={mine[-1]['acc_bits']})"))
    return lines


def plot(rows: list[dict[str, Any]], float_acc: float, path: Path, title: str) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method and r["acc"] is not None),
                      key=lambda r: r["acc_bits"])
        ps = [r["acc_bits"] for r in mine]
        ax.plot(ps, [100 * r["acc"] for r in mine], "o-", label=method)
        bx.plot(ps, [r["seconds"] for r in mine], "o-", label=method)
    ax.axhline(100 * float_acc, color="k", ls="--", lw=1, label="float")
    ax.axhline(95 * float_acc, color="gray", ls=":", lw=1, label="95% of float")
    ax.set_xlabel("accumulator width P (hidden layers)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    bx.set_yscale("log")
    bx.set_xlabel("accumulator width P (hidden layers)")
    bx.set_ylabel("train-stage wall time (s, log)")
    bx.set_title("wall time (1 thread, CPU)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"unknown method {unknown[0]!r}; use {', '.join(METHODS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    torch.set_num_threads(args.threads)
    base = dict(dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size,
                seed=args.seed, num_threads=args.threads,
                max_train_samples=args.max_train_samples)
    t0 = time.time()
    print(f"[float] {args.float_epochs} epochs", flush=True)
    f = trained(ModelSpec(arch=args.arch, quant="float", hidden=args.hidden),
                TrainConfig(float_epochs=args.float_epochs, qat_epochs=0, **base),
                out / "float")
    float_acc = f["float_test_acc"]
    float_ckpt = out / "float" / "checkpoint.pt"
    variants: list[tuple[str, dict[str, Any]]] = []
    for m in methods:
        if m in AXE_METHODS:
            method, scales = AXE_METHODS[m]
            variants.append((m, {"method": method, "axe_scales": scales, "qat_epochs": 0,
                                 "calibration_samples": args.calibration_samples}))
        else:
            variants.append((m, {"qat_epochs": args.qat_epochs, **QAT_RECIPES[m]}))
    if args.finetune_epochs:
        variants.append((f"axe-gpfq+qat{args.finetune_epochs}",
                         {"method": "axe-gpfq", "calibration_samples": args.calibration_samples,
                          "ptq_finetune_epochs": args.finetune_epochs}))
    rows = []
    for p in (int(v) for v in args.acc_bits.split(",") if v):
        for label, fields in variants:
            if args.only_existing and not (out / f"{label}_p{p}" / "train.json").exists():
                continue
            print(f"[{label} P={p}]", flush=True)
            spec = ModelSpec(arch=args.arch, quant="a2q+", acc_bits=p, hidden=args.hidden)
            cfg = TrainConfig(float_epochs=0, **{**base, **fields})
            row = point(spec, cfg, out / f"{label}_p{p}", float_ckpt, method=label, acc_bits=p)
            rows.append(row)
            acc = "failed" if row["acc"] is None else f"{row['acc']:.2%}"
            print(f"    {acc}, exact {row.get('exact_bits')}, {row.get('seconds')} s",
                  flush=True)
    total = time.time() - t0
    if args.only_existing:  # nothing ran here: the time the points themselves took
        total = f["seconds"] + sum(r.get("seconds") or 0.0 for r in rows)
    title = f"{args.arch.upper()} W4A4 on {args.dataset}"
    plot(rows, float_acc, out / "ptq.png", title)
    m = machine()
    doc = {"command": command_line(argv), "machine": m, "total_seconds": round(total, 1),
           "float_test_acc": float_acc, "float_epochs": args.float_epochs,
           "qat_epochs": args.qat_epochs, "calibration_samples": args.calibration_samples,
           "rows": rows}
    write_json(out / "results.json", doc)
    md = [f"Command: `{doc['command']}`  ",
          f"Machine: {m['cores']} cores, {m['device']}, torch {m['torch']}, "
          f"{m['threads']} thread(s); total {total:.0f} s  ",
          f"Budget: {args.float_epochs} float epochs once; QAT {args.qat_epochs} epochs per "
          f"point; AXE on {args.calibration_samples} calibration images. Policy: hidden layers "
          "at P, first and last unconstrained (plain GPFQ/GPTQ for AXE).", "",
          f"Float test accuracy: **{float_acc:.2%}**", "", *table(rows, float_acc), "",
          "Where each method falls below 95% of float:", *below_95(rows, float_acc)]
    write_text(out / "results.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
