"""Per-channel exact accumulator widths of a build, as a PNG: where per-channel sizing pays.

Pure (certificate dict in, PNG file out); reads only ``channel_exact_bits`` and the per-layer
``exact_bits`` / ``chosen_bits`` of ``certificate.json`` entries, so a report can call it as
``plot_channel_widths(layout.read_artifact(build, layout.CERTIFICATE), out / "widths.png")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def channel_width_summary(cert: dict[str, Any]) -> list[dict[str, Any]]:
    """Per layer: min/median/max channel width, and the adder bits a per-layer width wastes
    at the roots (sum over channels of layer width minus channel width)."""
    rows = []
    for e in cert["layers"]:
        bits = sorted(e.get("channel_exact_bits") or [])
        if not bits:
            continue
        rows.append({"node": e["node"], "layer_bits": e["exact_bits"],
                     "chosen_bits": e["chosen_bits"], "min": bits[0],
                     "median": bits[len(bits) // 2], "max": bits[-1],
                     "root_bits_saved": sum(e["exact_bits"] - b for b in bits)})
    return rows


def plot_channel_widths(cert: dict[str, Any], path: Path) -> Path:
    """One box per layer of its channels' exact widths, the layer's exact and chosen width
    as markers; title says what produced the figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [e for e in cert["layers"] if e.get("channel_exact_bits")]
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * max(1, len(layers)), 3.2))
    data = [e["channel_exact_bits"] for e in layers]
    if data:
        ax.boxplot(data, whis=(0, 100))
        xs = range(1, len(layers) + 1)
        ax.plot(xs, [e["exact_bits"] for e in layers], "v", color="C3",
                label="layer exact (max)")
        ax.plot(xs, [e["chosen_bits"] for e in layers], "_", color="C0", markersize=18,
                label="chosen (certified)")
        ax.set_xticks(list(xs), [e["node"] for e in layers], rotation=30, ha="right",
                      fontsize=7)
        ax.legend(fontsize=7)
    ax.set_ylabel("exact accumulator bits per channel")
    ax.set_title("per-channel exact widths (a2qflow bounds, certificate.json)", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
