"""TFC W4A4 on MNIST: float once, then A2Q and A2Q+ QAT at each P, warm-started from it.

Run by hand (``make bench-train``); writes ``results.json`` and ``results.md`` (with the exact
command, machine and epoch budget) into ``--out``. Every point's exact accumulator widths come
from its trained integer weights (train.json), not from the configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import command_line, machine, results_table, train_point

from a2qflow import train
from a2qflow.artifacts import write_json, write_text
from a2qflow.config import ModelSpec, TrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", required=True, help="directory with the MNIST IDX files")
    p.add_argument("--out", default="bench/out/train_mnist")
    p.add_argument("--acc-bits", default="32,16,12,10")
    p.add_argument("--quants", default="a2q,a2q+")
    p.add_argument("--float-epochs", type=int, default=10)
    p.add_argument("--qat-epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    command = command_line(argv)
    cfg = dict(dataset="mnist", data_dir=args.data_dir, batch_size=args.batch_size,
               seed=args.seed, num_threads=args.threads)
    t0 = time.time()
    float_dir = out / "float"
    print(f"[float] {args.float_epochs} epochs -> {float_dir}", flush=True)
    f = train.run(ModelSpec(quant="float"),
                  TrainConfig(float_epochs=args.float_epochs, qat_epochs=0, **cfg), float_dir)
    rows = []
    for quant in args.quants.split(","):
        for p in (int(v) for v in args.acc_bits.split(",")):
            name = f"{quant.replace('+', 'p')}_P{p}"
            print(f"[{name}] {args.qat_epochs} QAT epochs, warm start from float", flush=True)
            rows.append(train_point(
                ModelSpec(quant=quant, acc_bits=p),
                TrainConfig(float_epochs=0, qat_epochs=args.qat_epochs, **cfg),
                out / name, float_dir / "checkpoint.pt", quant=quant, acc_bits=p))
            print(f"    {rows[-1]}", flush=True)
    result = {
        "command": command,
        "machine": machine(),
        "epochs": {"float": args.float_epochs, "qat": args.qat_epochs},
        "float_acc": f["quant_test_acc"],
        "layer_names": [x["name"] for x in f["layers"]],
        "rows": rows,
        "seconds": round(time.time() - t0, 1),
    }
    write_json(out / "results.json", result)
    write_text(out / "results.md", render_markdown(result))
    print(render_markdown(result))
    return 0


def render_markdown(r: dict) -> str:
    lines = [
        "# TFC W4A4 on MNIST: accuracy vs accumulator width",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cores']} cores ({r['machine']['cpu']}), torch "
        f"{r['machine']['torch']}, CPU only; total {r['seconds']:.0f} s  ",
        f"Budget: {r['epochs']['float']} float epochs once, then {r['epochs']['qat']} QAT epochs "
        "per point warm-started from that float model (EP-init). Hidden layers at P; first and "
        "last layer unconstrained (default policy).",
        "",
        f"Float test accuracy: **{r['float_acc']:.2%}**",
        "",
    ]
    lines += results_table(r["rows"], "quant", r["float_acc"])
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
