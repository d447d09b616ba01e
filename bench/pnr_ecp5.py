"""Placed and routed on a Lattice ECP5 with open tools: certified widths vs 32-bit accumulators.

Run by hand:  .venv/bin/python bench/pnr_ecp5.py build/demo [more build dirs] --board ulx3s-85f
Each build directory must have been taken through ``a2qflow rtl`` with ``--compare-acc-bits 32``
(``a2qflow demo`` and the TFC configs do). For each, ``a2qflow.pnr.run`` wraps the Verilog in
the P&R harness, synthesizes it with Yosys synth_ecp5, places and routes it with nextpnr-ecp5 at
the board's clock (seeded) and packs the bitstream, for both variants. The P&R runs from a
fresh cache unless ``--cache`` names one (a cached variant keeps the times of its own run).
Prints a markdown table and writes it with every pnr.json, the command and the machine to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, machine  # noqa: E402

from a2qflow import pnr  # noqa: E402


def rows(name: str, result: dict[str, Any]) -> list[str]:
    out = []
    for variant, v in result["variants"].items():
        r, s = v["routed"], v["seconds"]
        widths = ",".join(str(b) for b in v["acc_bits"]) if v.get("acc_bits") else "-"
        met = {True: "met", False: "FAILED", None: "-"}[v["timing_met"]]
        out.append(f"| {name} | {variant} | {widths} | {r['LUT4']:,} | {r['FF']:,} | {r['EBR']} | "
                   f"{r['MULT18']} | {v['fmax_mhz']:.1f} | {met} | {s['synth']:.0f} | "
                   f"{s['pnr']:.0f} | {s['pack']:.0f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", type=Path)
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--compare-acc-bits", type=int, default=32,
                    help="0: the certified variant only (a later run with the same --cache "
                         "reuses it)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clock-mhz", type=float, default=None,
                    help="P&R target instead of the board's clock")
    ap.add_argument("--cache", type=Path, default=None,
                    help="P&R cache to use (default: a fresh one, so the times are real)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/pnr_ecp5"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["| design | variant | acc bits | LUT4 | FF | EBR | MULT18 | Fmax MHz | "
             "board clock | synth s | P&R s | pack s |", "|---|---|---|---|---|---|---|---|---|"
             "---|---|---|"]
    docs = {}
    with tempfile.TemporaryDirectory(prefix="pnr-bench-cache-") as fresh:
        cache = args.cache or Path(fresh)
        for build in args.builds:
            t0 = time.perf_counter()
            result = pnr.run(build, seed=args.seed,
                             compare_acc_bits=args.compare_acc_bits or None,
                             board=args.board, clock_mhz=args.clock_mhz, cache_dir=cache)
            result["bench_seconds"] = round(time.perf_counter() - t0, 1)
            docs[str(build)] = result
            lines += rows(build.name, result)
            print(pnr.pnr_table(result), flush=True)
    first = next(iter(docs.values()))
    header = [f"command: `{command_line(argv)}`", "",
              f"{first['label']}; synthesis {first['synth_tool']} synth_ecp5; seed {args.seed}; "
              f"target {first['target_mhz']:g} MHz. Figures include the P&R harness "
              "(pnr.json harness).", ""]
    (args.out / "pnr_ecp5.md").write_text("\n".join(header + lines) + "\n")
    (args.out / "pnr_ecp5.json").write_text(json.dumps(
        {"command": command_line(argv), "machine": machine(), "results": docs}, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
