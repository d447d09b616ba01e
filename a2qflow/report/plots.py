"""Report plots (matplotlib, PNG). Each function takes build views and returns a figure file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from a2qflow.artifacts import atomic_path  # noqa: E402
from a2qflow.report.collect import (  # noqa: E402
    BuildView,
    compressed_weight_bits,
    pareto_front,
)

COLORS = {"a2q": "tab:blue", "a2q+": "tab:orange", "baseline": "tab:gray", "float": "k"}


def _save(fig, target: Path) -> Path:
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def _by_quant(views: list[BuildView]) -> dict[str, list[BuildView]]:
    groups: dict[str, list[BuildView]] = {}
    for v in views:
        if v.acc_bits is not None:
            groups.setdefault(v.quant, []).append(v)
    return {q: sorted(vs, key=lambda v: v.acc_bits) for q, vs in groups.items()}


def accuracy_vs_p(views: list[BuildView], target: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for quant, vs in _by_quant(views).items():
        pts = [(v.acc_bits, v.acc) for v in vs if v.acc is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=quant, color=COLORS.get(quant))
    floats = [v.float_acc for v in views if v.float_acc is not None]
    if floats:
        ax.axhline(max(floats), color="k", ls="--", lw=1, label="float")
    ax.set(xlabel="accumulator width P (bits)", ylabel="test accuracy",
           title="Accuracy vs accumulator width")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, target)


def resources_vs_p(views: list[BuildView], target: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sources = sorted({v.resource_source for v in views if v.resource_source})
    for ax, res in zip(axes, ("LUT", "DSP"), strict=True):
        for quant, vs in _by_quant(views).items():
            pts = [(v.acc_bits, v.resources.get(res)) for v in vs
                   if v.resources.get(res) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=f"{quant} (certified widths)",
                        color=COLORS.get(quant))
            ref = [(v.acc_bits, v.resources_ref.get(res)) for v in vs
                   if v.resources_ref.get(res) is not None]
            if ref:
                ax.plot(*zip(*ref, strict=True), marker="x", ls="--", color=COLORS.get(quant),
                        label=f"{quant} at {vs[0].ref_bits}-bit accumulators")
        ax.set(xlabel="accumulator width P (bits)", ylabel=res, title=f"{res} vs P")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.suptitle(f"source: {', '.join(sources) or 'no resource figures yet'}", fontsize=9)
    return _save(fig, target)


def pareto(views: list[BuildView], target: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [(v.resources["LUT"], v.acc, v.name) for v in views
           if v.acc is not None and v.resources.get("LUT") is not None]
    for cost, acc, name in pts:
        ax.scatter(cost, acc, color="tab:blue")
        ax.annotate(name, (cost, acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front(pts)
    if front:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:red",
                label="Pareto front")
        ax.legend()
    sources = sorted({v.resource_source for v in views if v.resource_source})
    ax.set(xlabel=f"LUT ({', '.join(sources) or 'n/a'})", ylabel="test accuracy",
           title="Accuracy / LUT trade-off")
    ax.grid(alpha=0.3)
    return _save(fig, target)


def layer_widths(view: BuildView, target: Path) -> Path:
    """Per layer: trained P, exact, data-type bound and FINN's default, from the certificate."""
    fig, ax = plt.subplots(figsize=(7, 4))
    layers = (view.certificate or {}).get("layers") or []
    names = [e["layer"] for e in layers]
    series = {
        "trained P": [e.get("trained_p") or 0 for e in layers],
        "exact": [e["exact_bits"] for e in layers],
        "chosen": [e["chosen_bits"] for e in layers],
        "data-type bound (tight)": [e["datatype_bound"]["tight"] for e in layers],
        "FINN default": [_bits(e.get("finn_default")) for e in layers],
    }
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names, rotation=20,
                  fontsize=8)
    ax.set(ylabel="bits", title=f"Accumulator widths per layer: {view.name}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, target)


def channel_widths(view: BuildView, target: Path) -> Path:
    """One box per layer over its channels' exact widths, with the layer's exact width (their
    maximum) and the chosen width as markers, from the certificate."""
    fig, ax = plt.subplots(figsize=(7, 4))
    layers = [e for e in (view.certificate or {}).get("layers", [])
              if e.get("channel_exact_bits")]
    if layers:
        xs = list(range(1, len(layers) + 1))
        ax.boxplot([e["channel_exact_bits"] for e in layers], whis=(0, 100))
        ax.plot(xs, [e["exact_bits"] for e in layers], "v", color="tab:red",
                label="layer exact (max over channels)")
        ax.plot(xs, [e["chosen_bits"] for e in layers], "_", color="tab:blue", markersize=18,
                label="chosen (certified)")
        ax.set_xticks(xs, [e["layer"] for e in layers], rotation=20, fontsize=8)
        ax.legend(fontsize=7)
    ax.set(ylabel="exact accumulator bits per channel",
           title=f"Per-channel exact widths (a2qflow bounds): {view.name}")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, target)


def sparsity(view: BuildView, target: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r["name"] for r in view.layers if r.get("sparsity") is not None]
    sizes = [compressed_weight_bits(r["k"], r["channels"], r["weight_bits"], r["sparsity"])
             for r in view.layers if r.get("sparsity") is not None]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [s["dense_bits"] / 8192 for s in sizes], 0.4, label="dense")
    ax.bar([i + 0.2 for i in x], [s["best_bits"] / 8192 for s in sizes], 0.4,
           label="compressed (min of dense, CSR)")
    for i, r in enumerate(r for r in view.layers if r.get("sparsity") is not None):
        ax.annotate(f"{r['sparsity']:.0%} zeros", (i, sizes[i]["dense_bits"] / 8192),
                    ha="center", fontsize=7, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(list(x), names, rotation=20, fontsize=8)
    ax.set(ylabel="weight memory (KiB)", title=f"Weight sparsity and size: {view.name}")
    ax.legend(fontsize=8)
    return _save(fig, target)


def utilization(view: BuildView, target: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    items = [(k, v) for k, v in view.utilization.items() if v is not None]
    ax.barh([k for k, _ in items], [100 * v for _, v in items], color="tab:green")
    ax.set(xlabel=f"% of {view.board or 'board'}",
           title=f"Utilization ({view.resource_source or 'n/a'}): {view.name}")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, target)


def _bits(datatype: str | None) -> int:
    digits = "".join(ch for ch in (datatype or "") if ch.isdigit())
    return int(digits) if digits else 0
