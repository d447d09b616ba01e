"""`a2qflow report` and `a2qflow compare`: tables and plots over builds and sweeps.

``collect`` reads artifacts into plain views, ``plots`` draws PNGs, ``render`` writes Markdown
and self-contained HTML. Every resource figure carries the name of the tool that produced it.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from a2qflow.artifacts import write_text
from a2qflow.report import plots
from a2qflow.report.collect import (
    BuildView,
    channel_width_summary,
    compressed_weight_bits,
    load_dirs,
)
from a2qflow.report.render import Figure, Section, Table, to_html, to_markdown

SPARSE_SCHEME = ("Compressed size: the smaller of dense (K*C*M bits) and CSR (per non-zero weight "
                 "M value bits + ceil(log2 K) index bits, plus ceil(log2(K+1)) bits per channel).")

CHANNEL_WIDTHS = ("Each output channel's exact accumulator width, from its own integer weights "
                  "and the layer's input range (a2qflow bounds). A folded MVAU shares one "
                  "accumulator width per layer (the maximum); an unrolled layer "
                  "(SIMD = MW, PE = MH) gives each channel's adder tree its own root width, "
                  "which saves the root bits counted here.")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _num(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if isinstance(x, int | float) else str(x)


def _ratio(v: BuildView, res: str) -> str:
    cert, ref = v.resources.get(res), v.resources_ref.get(res)
    return f"{ref / cert:.2f}x" if cert and ref else "-"


def _fmax(v: BuildView) -> str:
    """Routed Fmax and whether the board's clock is met (ECP5, nextpnr); '-' without P&R."""
    if not v.pnr or v.pnr.get("fmax_mhz") is None:
        return "-"
    met = "met" if v.pnr.get("timing_met") else "FAILED"
    return f"{v.pnr['fmax_mhz']:.1f} MHz ({met} at {v.pnr['target_mhz']:g})"


def builds_table(views: list[BuildView]) -> Table:
    rows = []
    for v in views:
        if v.error:
            rows.append([v.name, v.quant, "-", _num(v.acc_bits), "failed: " + v.error]
                        + ["-"] * 8)
            continue
        rows.append([v.name, v.quant, v.method, _num(v.acc_bits), _pct(v.acc), _pct(v.float_acc),
                     _num(v.resources.get("LUT")), _num(v.resources.get("FF")),
                     _num(v.resources.get("DSP")), _ratio(v, "LUT"),
                     f"{v.ref_bits}-bit" if v.ref_bits else "-", v.resource_source or "-",
                     _fmax(v)])
    return Table(["build", "quant", "method", "P", "test acc", "float acc", "LUT", "FF", "DSP",
                  "LUT ratio", "vs", "resource source", "Fmax (routed)"], rows)


def certificate_table(v: BuildView) -> Table:
    rows = []
    for e in (v.certificate or {}).get("layers", []):
        fmt = f"{'s' if e['input_signed'] else 'u'}{e['input_bits']}"
        rows.append([e["layer"], str(e["k"]), fmt, _num(e.get("trained_p")), str(e["max_l1"]),
                     f"{e['a2q_l1_limit']:.1f}", f"{e['a2q_plus_l1_limit']:.1f}",
                     f"{e['datatype_bound']['classic']}/{e['datatype_bound']['tight']}",
                     str(e["exact_bits"]), e["chosen"], str(e.get("finn_default", "-")),
                     str(e.get("finn_minimized", "-")), e["verdict"],
                     ", ".join(e.get("proven_by") or []) or (e.get("refusal") or "-")])
    return Table(["layer", "K", "input", "trained P", "max L1", "A2Q limit", "A2Q+ limit",
                  "dtype bound classic/tight", "exact", "chosen", "FINN default",
                  "FINN minimized", "verdict", "proven by"], rows)


def sparsity_table(v: BuildView) -> Table:
    rows = []
    for r in v.layers:
        if r.get("sparsity") is None:
            continue
        size = compressed_weight_bits(r["k"], r["channels"], r["weight_bits"], r["sparsity"])
        rows.append([r["name"], f"{r['sparsity']:.1%}", _num(size["nnz"]),
                     f"{size['dense_bits'] / 8:,.0f}", f"{size['best_bits'] / 8:,.0f}",
                     f"{size['dense_bits'] / size['best_bits']:.2f}x"])
    return Table(["layer", "zeros", "non-zeros", "dense bytes", "compressed bytes", "saving"],
                 rows)


def channel_width_table(v: BuildView) -> Table:
    rows = [[r["layer"], str(r["channels"]), f"{r['min']} / {r['median']} / {r['max']}",
             str(r["layer_bits"]), str(r["chosen_bits"]), _num(r["root_bits_saved"]),
             f"{r['root_bits_saved'] / (r['channels'] * r['layer_bits']):.1%}"]
            for r in channel_width_summary(v.certificate or {})]
    return Table(["layer", "channels", "channel exact bits min / median / max", "layer exact",
                  "chosen", "root bits saved per-channel", "of per-layer root bits"], rows)


def focus_build(views: list[BuildView]) -> BuildView | None:
    """The build the per-layer sections show: the narrowest certified one."""
    ok = [v for v in views if not v.error]
    certified = [v for v in ok if v.certificate]
    pool = certified or ok
    return min(pool, key=lambda v: v.acc_bits or 99) if pool else None


def build_sections(views: list[BuildView], out: Path) -> list[Section]:
    sources = sorted({v.resource_source for v in views if v.resource_source})
    sections = [Section("Builds", note=("Resources: " + (", ".join(sources) or "none yet")
                                        + ". LUT ratio = LUTs at the reference accumulator "
                                        "width / LUTs at the certified widths, same folding "
                                        "and tool."), table=builds_table(views))]
    placed = [v for v in views if v.pnr]
    if placed:
        sections.append(Section("Placed and routed (ECP5)", note=" ".join(
            f"{v.name}: {v.pnr['label']}, seed {v.pnr['seed']}, Fmax {_fmax(v)}. "
            f"{v.pnr['harness']['note']}" for v in placed)))
    warned = [(v.name, w) for v in views for w in v.warnings]
    if warned:
        sections.append(Section("Warnings", note="; ".join(f"{name}: {w}" for name, w in warned)))
    sections.append(Section("Accuracy and resources vs accumulator width", figures=[
        Figure(plots.accuracy_vs_p(views, out / "accuracy_vs_p.png"),
               "test accuracy vs P (A2Q, A2Q+, baseline; dashed: float)"),
        Figure(plots.resources_vs_p(views, out / "resources_vs_p.png"),
               f"LUT and DSP vs P ({', '.join(sources) or 'n/a'})", width=900),
        Figure(plots.pareto(views, out / "pareto.png"), "accuracy / LUT Pareto front"),
    ]))
    focus = focus_build(views)
    if focus is not None:
        figs = [Figure(plots.sparsity(focus, out / "sparsity.png"),
                       "weight sparsity and compressed size per layer")]
        if focus.certificate:
            figs.insert(0, Figure(plots.layer_widths(focus, out / "layer_widths.png"),
                                  "accumulator widths per layer (certificate)"))
        if focus.utilization:
            figs.append(Figure(plots.utilization(focus, out / "utilization.png"),
                               f"utilization of {focus.board} ({focus.resource_source})"))
        sections.append(Section(f"Per-layer view: {focus.name}", figures=figs))
        sections.append(Section(f"Weight sparsity: {focus.name}", note=SPARSE_SCHEME,
                                table=sparsity_table(focus)))
        if channel_width_summary(focus.certificate or {}):
            sections.append(Section(
                f"Per-channel exact widths: {focus.name}", note=CHANNEL_WIDTHS,
                table=channel_width_table(focus),
                figures=[Figure(plots.channel_widths(focus, out / "channel_widths.png"),
                                "exact accumulator width of every output channel, per layer")]))
    for v in views:
        if v.certificate:
            verdict = "all proven" if v.certificate.get("all_proven") else "REFUSED"
            sections.append(Section(f"Certificate: {v.name} ({verdict})",
                                    note="Widths in bits; limits are L1 norms at the trained P "
                                         "(or the chosen width for unconstrained layers).",
                                    table=certificate_table(v)))
    return sections


def run(dirs: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Write report.md, report.html and the PNG plots into ``out`` (default: first dir)."""
    views = load_dirs(dirs)
    out = Path(out or dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(views, out)
    title = f"a2qflow report: {', '.join(Path(d).name for d in dirs)}"
    generated = (f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} from "
                 f"{len(views)} build(s).")
    write_text(out / "report.md", to_markdown(title, generated, sections))
    write_text(out / "report.html", to_html(title, generated, sections))
    figures = [f.path.name for s in sections for f in s.figures]
    return {"html": str(out / "report.html"), "markdown": str(out / "report.md"),
            "figures": figures, "builds": len(views)}


def compare(a: Path, b: Path) -> str:
    """Two builds side by side, as Markdown."""
    va, vb = load_dirs([a])[0], load_dirs([b])[0]
    rows = [
        ["quant / P", f"{va.quant} / {_num(va.acc_bits)}", f"{vb.quant} / {_num(vb.acc_bits)}"],
        ["test accuracy", _pct(va.acc), _pct(vb.acc)],
    ]
    for res in ("LUT", "FF", "DSP", "BRAM18"):
        rows.append([f"{res}", _num(va.resources.get(res)), _num(vb.resources.get(res))])
    rows.append(["resource source", va.resource_source or "-", vb.resource_source or "-"])
    by_b = {r["name"]: r for r in vb.layers}
    for r in va.layers:
        o = by_b.get(r["name"], {})
        rows.append([f"{r['name']} exact bits (P)",
                     f"{_num(r.get('exact_bits'))} ({_num(r.get('acc_bits'))})",
                     f"{_num(o.get('exact_bits'))} ({_num(o.get('acc_bits'))})"])
    table = Table(["", va.name, vb.name], rows)
    return to_markdown(f"{va.name} vs {vb.name}", "", [Section("Side by side", table=table)])
