"""TFC W4A4 on MNIST, A2Q+ at P in {32, 16, 12}: Yosys resources of the open Verilog backend.

Run by hand:  .venv/bin/python bench/resources.py --data-dir ../shared/data/mnist
Every point is trained (or reused from ``--reuse``, e.g. the TFC sweep), compiled with the same
target throughput or ``--folding`` file (so the same folding, checked), generated as Verilog,
simulated bit-exact against FINN (``a2qflow rtl``) and synthesized with the pinned Yosys
(``a2qflow synth``).
The P=32 row is the same network with every accumulator FORCED to 32 bits: A2Q+ weights trained
at P=32 still need only ~12-20 exact bits, and 32 bits is what a design without a proof uses.
Writes ``resources.md`` and ``resources.json`` (with the command that made them) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, machine  # noqa: E402

from a2qflow import compile as a2q_compile  # noqa: E402
from a2qflow import export, rtl, synth, train, verify  # noqa: E402
from a2qflow.config import ModelSpec, TrainConfig  # noqa: E402

REUSED = ("checkpoint.pt", "train.json", "samples.npz", "model.qonnx.onnx", "export.json")


def prepare(point: Path, p: int, args: argparse.Namespace) -> None:
    """Trained and exported TFC W4A4 A2Q+ at P in ``point`` (copied from --reuse if there)."""
    if all((point / f).exists() for f in REUSED):
        return
    src = Path(args.reuse) / f"a2qp_P{p}" if args.reuse else None
    point.mkdir(parents=True, exist_ok=True)
    if src is not None and all((src / f).exists() for f in REUSED):
        for f in REUSED:
            shutil.copyfile(src / f, point / f)
        return
    spec = ModelSpec(arch="tfc", quant="a2q+", weight_bits=4, act_bits=4, input_bits=8,
                     acc_bits=p, in_features=784, in_channels=1)
    cfg = TrainConfig(dataset="mnist", data_dir=args.data_dir, float_epochs=10, qat_epochs=10,
                      batch_size=128)
    train.run(spec, cfg, point, progress=False)
    export.run(point)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data/mnist")
    ap.add_argument("--acc-bits", default="32,16,12")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--target-fps", type=float, default=100_000)
    ap.add_argument("--folding", default=None,
                    help="FINN folding JSON (PE, SIMD, resType per layer) instead of --target-fps")
    ap.add_argument("--reuse", default="bench/out/sweep_tfc",
                    help="directory with trained a2qp_P<P>/ builds to reuse (skip training)")
    ap.add_argument("--out", default="bench/out/resources")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    foldings = set()
    for p in (int(b) for b in args.acc_bits.split(",")):
        point = out / f"a2qp_P{p}"
        prepare(point, p, args)
        t0 = time.perf_counter()
        if args.folding:
            a2q_compile.run(point, args.board, folding=Path(args.folding))
        else:
            a2q_compile.run(point, args.board, target_fps=args.target_fps)
        verify.run(point)  # synth reports only on a verified, simulated design
        t1 = time.perf_counter()
        sim = rtl.run(point, max_images=16, compare_acc_bits=32)
        t2 = time.perf_counter()
        res = synth.run(point)
        t3 = time.perf_counter()
        foldings.add(tuple((m["simd"], m["pe"], m["res_type"])
                           for m in res["variants"]["certified"]["layers"]))
        variant = res["variants"]["acc32" if p == 32 else "certified"]
        rows.append({"P": p, "forced_32": p == 32, "acc_bits": variant["acc_bits"],
                     "certified_acc_bits": res["variants"]["certified"]["acc_bits"],
                     "total": variant["total"], "logic_levels": variant["logic_levels"],
                     "layers": [{k: m[k] for k in ("node", "acc_bits", "resources")}
                                for m in variant["layers"]],
                     "sim_ok": sim["ok"], "cycles_per_image": sim["network"]["cycles_per_image"],
                     "finn_cycle_estimate": sim["network"]["finn_cycle_estimate"],
                     "seconds": {"compile": round(t1 - t0, 1), "rtl": round(t2 - t1, 1),
                                 "synth": round(t3 - t2, 1)},
                     "tool": res["label"]})
    if len(foldings) != 1:
        raise SystemExit(f"the points were folded differently: {foldings}")
    base = next((r for r in rows if r["P"] == 32), rows[0])["total"]
    for r in rows:
        r["lut_saving_vs_32"] = round(base["LUT"] / r["total"]["LUT"], 3)
        r["ff_saving_vs_32"] = round(base["FF"] / r["total"]["FF"], 3)
    doc = {"command": command_line(argv), "machine": machine(), "board": args.board,
           "folding_simd_pe": list(next(iter(foldings))), "rows": rows}
    lines = [f"# TFC W4A4 (MNIST), A2Q+: open-flow resources ({rows[0]['tool']})", "",
             f"command: `{doc['command']}`", "",
             "P=32 row: the same network with every accumulator forced to 32 bits (A2Q+ "
             "weights trained at P=32 need far fewer exact bits; 32 is what a design "
             "without the proof uses). Same folding (SIMD, PE, resType per layer: "
             f"{doc['folding_simd_pe']}), same Yosys.", "",
             "| P | acc bits per layer | LUT | FF | CARRY | DSP | BRAM18 | levels | LUT x below "
             "P=32 | FF x below P=32 | bit-exact sim | cycles/image (FINN est.) | rtl+synth s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["total"]
        lines.append(
            f"| {r['P']}{' (forced)' if r['forced_32'] else ''} | "
            f"{','.join(map(str, r['acc_bits']))} | {t['LUT']} | {t['FF']} | {t['CARRY']} | "
            f"{t['DSP']} | {t['BRAM18']} | {r['logic_levels']} | {r['lut_saving_vs_32']} | "
            f"{r['ff_saving_vs_32']} | {'yes' if r['sim_ok'] else 'NO'} | "
            f"{r['cycles_per_image']:.0f} ({r['finn_cycle_estimate']}) | "
            f"{r['seconds']['rtl'] + r['seconds']['synth']:.0f} |")
    (out / "resources.md").write_text("\n".join(lines) + "\n")
    (out / "resources.json").write_text(json.dumps(doc, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
