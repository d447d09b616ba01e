"""Training recipes side by side at narrow accumulators: standard vs progressive vs distill.

Same data, seeds and epoch budget for every recipe; one float model per run, shared by all
points as their warm start (and as the distillation teacher). Writes ``results.json``,
``results.md`` (command, machine, budget) and ``accuracy.png`` into ``--out``. Points (and the
float model) already trained in ``--out`` are reused, so a run resumes, and several processes
can share one float model: train it with ``--acc-bits ''``, then one process per P.

  python bench/accuracy.py --dataset mnist --data-dir ../shared/data/mnist --out bench/out/acc
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import command_line, machine, results_table, train_point, trained  # noqa: E402

from a2qflow.artifacts import atomic_path, write_json, write_text  # noqa: E402
from a2qflow.config import ModelSpec, TrainConfig  # noqa: E402

RECIPES = {
    "standard": {},
    "progressive": {"progressive": True},
    "distill": {"distill": True},
    "progressive+distill": {"progressive": True, "distill": True},
    "reproject": {"reproject_every": 20},
    "reproject+distill": {"reproject_every": 20, "distill": True},
    "reproject-settle+distill": {"reproject_every": 20, "reproject_settle_epochs": 1,
                                 "distill": True},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="tfc", choices=["tfc", "cnv"])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="bench/out/accuracy")
    p.add_argument("--quant", default="a2q+", choices=["a2q", "a2q+"])
    p.add_argument("--acc-bits", default="12,10,8")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--policy", default="hidden", choices=["hidden", "all"],
                   help="constrain hidden layers only (default policy) or every layer")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--float-epochs", type=int, default=10)
    p.add_argument("--qat-epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def spec_for(args: argparse.Namespace, p: int) -> ModelSpec:
    edge = p if args.policy == "all" else None
    return ModelSpec(arch=args.arch, quant=args.quant, acc_bits=p, first_acc_bits=edge,
                     last_acc_bits=edge, hidden=args.hidden)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    base = dict(dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size,
                seed=args.seed, num_threads=args.threads,
                max_train_samples=args.max_train_samples)
    t0 = time.time()
    float_dir = out / "float"
    print(f"[float] {args.float_epochs} epochs", flush=True)
    f = trained(ModelSpec(arch=args.arch, quant="float", hidden=args.hidden),
                TrainConfig(float_epochs=args.float_epochs, qat_epochs=0, **base), float_dir)
    rows = []
    for p in (int(v) for v in args.acc_bits.split(",") if v):
        for recipe in args.recipes.split(","):
            print(f"[{recipe} P={p}]", flush=True)
            cfg = TrainConfig(float_epochs=0, qat_epochs=args.qat_epochs, **base,
                              **RECIPES[recipe])
            rows.append(train_point(spec_for(args, p), cfg,
                                    out / f"{recipe.replace('+', '_')}_P{p}",
                                    float_dir / "checkpoint.pt", recipe=recipe, acc_bits=p))
            print(f"    {rows[-1]}", flush=True)
    result = {"command": command_line(argv), "machine": machine(),
              "arch": args.arch, "dataset": args.dataset, "quant": args.quant,
              "policy": args.policy,
              "epochs": {"float": args.float_epochs, "qat": args.qat_epochs},
              "float_acc": f["quant_test_acc"], "layer_names": [x["name"] for x in f["layers"]],
              "rows": rows, "seconds": round(time.time() - t0, 1)}
    write_json(out / "results.json", result)
    write_text(out / "results.md", render_markdown(result))
    plot(result, out / "accuracy.png")
    print(render_markdown(result))
    return 0


def render_markdown(r: dict) -> str:
    policy = ("every layer at P" if r["policy"] == "all"
              else "hidden layers at P, first and last unconstrained")
    lines = [
        f"# {r['arch'].upper()} W4A4 on {r['dataset']}: {r['quant']} recipes at narrow P",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cores']} cores, {r['machine']['device']}, torch "
        f"{r['machine']['torch']}; total {r['seconds']:.0f} s  ",
        f"Budget: {r['epochs']['float']} float epochs once; {r['epochs']['qat']} QAT epochs per "
        f"point (split across the widths of a progressive schedule). Policy: {policy}.",
        "",
        f"Float test accuracy: **{r['float_acc']:.2%}**",
        "",
    ]
    lines += results_table(r["rows"], "recipe", r["float_acc"])
    lines.append("")
    return "\n".join(lines)


def plot(r: dict, target: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for recipe in dict.fromkeys(row["recipe"] for row in r["rows"]):
        pts = sorted((row["acc_bits"], row["acc"]) for row in r["rows"]
                     if row["recipe"] == recipe and row.get("acc") is not None)
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=recipe)
    ax.axhline(r["float_acc"], color="k", ls="--", lw=1, label="float")
    ax.set_xticks(sorted({row["acc_bits"] for row in r["rows"]}))
    ax.set_xlabel("accumulator width P (bits)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{r['arch'].upper()} W4A4 {r['quant']} on {r['dataset']} ({r['policy']})")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
