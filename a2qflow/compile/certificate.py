"""The overflow certificate: per MVAU/VVAU, every bound, the width chosen, and why it is safe.

Computed from the FINN HW-layer model itself (integer weight initializers and input datatypes,
not the export's claims), so it certifies the graph that is compiled. ``bounds`` does the math.
"""

from __future__ import annotations

import copy
from typing import Any

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds
from a2qflow.errors import A2QFlowError
from a2qflow.graph import (
    LayerRecord,
    input_datatype,
    integer_weights,
    match_layers,
    read_certified,
    read_layer_records,
)

CERTIFICATE_VERSION = 1


def finn_minimized_widths(model: ModelWrapper) -> list[str]:
    """What FINN's own MinimizeAccumulatorWidth picks for each MVAU/VVAU (on a copy)."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import (
        MinimizeAccumulatorWidth,
    )

    from a2qflow.graph import hw_matmul_nodes

    trial = ModelWrapper(copy.deepcopy(model.model)).transform(MinimizeAccumulatorWidth())
    return [getCustomOp(n).get_nodeattr("accDataType") for n in hw_matmul_nodes(trial)]


def certificate_entries(model: ModelWrapper, acc_bits: int | None = None) -> list[dict[str, Any]]:
    """One entry per layer of a HW-layer model *before* a2qflow sets the widths.

    ``acc_bits`` is a user-forced width; otherwise each layer gets its exact width. Entries whose
    width would not hold the layer's range, or whose exact width exceeds the trained P, get the
    verdict ``refused``.
    """
    pairs = match_layers(model, read_layer_records(model))
    minimized = finn_minimized_widths(model)
    entries = []
    for (node, rec), finn_min in zip(pairs, minimized, strict=True):
        entry = _layer_entry(model, node, rec, acc_bits)
        entry["finn_default"] = getCustomOp(node).get_nodeattr("accDataType")
        entry["finn_minimized"] = finn_min
        entries.append(entry)
    return entries


def _layer_entry(model: ModelWrapper, node: Any, rec: LayerRecord,
                 forced: int | None) -> dict[str, Any]:
    q = integer_weights(model, node)
    idt = input_datatype(node)
    n_bits, signed = idt.bitwidth(), bool(idt.signed())
    rng = bounds.exact_accumulator_range(q, int(idt.min()), int(idt.max()))
    exact = rng.bits
    chosen = forced if forced is not None else exact
    l1 = bounds.max_channel_l1(q)
    zero_centred = bounds.is_zero_centred(q)
    limits_at = rec.acc_bits if rec.acc_bits is not None else chosen
    tight = bounds.datatype_bound_tight(rec.k, n_bits, rec.weight_bits, signed)
    classic = bounds.datatype_bound_classic(rec.k, n_bits, rec.weight_bits)
    reasons = []
    if rec.acc_bits is not None and exact > rec.acc_bits:
        reasons.append(f"exact width {exact} exceeds the trained P={rec.acc_bits}")
    if chosen < exact:
        reasons.append(f"forced width {chosen} is below the exact width {exact}")
    proven_by = [] if reasons else _proving_bounds(chosen, exact, l1, zero_centred, n_bits,
                                                   signed, tight, classic)
    return {
        "layer": rec.name,
        "node": node.name,
        "op": rec.op,
        "quant": rec.quant,
        "k": rec.k,
        "channels": rec.channels,
        "input_datatype": idt.name,
        "input_bits": n_bits,
        "input_signed": signed,
        "export_input": {"bits": rec.input_bits, "signed": rec.input_signed},
        "weight_bits": rec.weight_bits,
        "trained_p": rec.acc_bits,
        "training_target": ("checked: exact <= trained P" if rec.acc_bits is not None else
                            "none checked: imported without a trained P" if rec.quant == "imported"
                            else "none: the layer was trained unconstrained"),
        "max_l1": l1,
        "zero_centred": zero_centred,
        "limits_at_bits": limits_at,
        "a2q_l1_limit": bounds.a2q_l1_limit(limits_at, n_bits, signed),
        "a2q_plus_l1_limit": bounds.a2q_plus_l1_limit(limits_at, n_bits),
        "datatype_bound": {"classic": classic, "tight": tight},
        "exact_range": [int(rng.lo.min()), int(rng.hi.max())],
        "exact_bits": exact,
        # per output channel: what an unrolled MVAU (one accumulator per channel) builds;
        # the layer's exact width is their maximum
        "channel_exact_bits": rng.channel_bits,
        "channel_exact_ranges": [[int(lo), int(hi)] for lo, hi in zip(rng.lo, rng.hi,
                                                                      strict=True)],
        "chosen": f"INT{chosen}",
        "chosen_bits": chosen,
        "forced": forced is not None,
        "verdict": "refused" if reasons else "proven",
        "proven_by": proven_by,
        "refusal": "; ".join(reasons) or None,
    }


def _proving_bounds(width: int, exact: int, l1: int, zero_centred: bool, n_bits: int,
                    signed: bool, tight: int, classic: int) -> list[str]:
    """Every bound under which ``width`` bits provably hold the layer's accumulator."""
    proofs = []
    if width >= exact:
        proofs.append("exact")
    if l1 <= bounds.a2q_l1_limit(width, n_bits, signed):
        proofs.append("a2q")
    if zero_centred and l1 <= bounds.a2q_plus_l1_limit(width, n_bits):
        proofs.append("a2q+")
    if width >= tight:
        proofs.append("datatype_tight")
    if width >= classic:
        proofs.append("datatype_classic")
    return proofs


def refusal_error(entries: list[dict[str, Any]], acc_bits: int | None) -> A2QFlowError | None:
    """The error a compile must stop with, or None when every layer is proven."""
    refused = [e for e in entries if e["verdict"] == "refused"]
    if not refused:
        return None
    lines = "; ".join(
        f"layer {e['layer']} ({e['quant']}, K={e['k']}, trained P={e['trained_p']}) needs "
        f"{e['exact_bits']} bits" for e in refused
    )
    if acc_bits is not None and any(e["chosen_bits"] < e["exact_bits"] for e in refused):
        need = max(e["exact_bits"] for e in entries)
        return A2QFlowError(
            f"refused: --acc-bits {acc_bits} would overflow: {lines}",
            f"use --acc-bits {need} or more, or train with A2Q/A2Q+ at P={acc_bits}",
        )
    return A2QFlowError(
        f"refused: trained accumulator target not met: {lines}",
        "retrain at that P (a checkpoint restored across widths keeps its old P) and export "
        "again; the exact width of the trained weights is what counts",
    )


def attach_hardware_widths(entries: list[dict[str, Any]], model: ModelWrapper) -> None:
    """Add what the certified model really uses: accDataType and the HLS register type."""
    certified = read_certified(model)
    if len(certified) != len(entries):
        raise AssertionError("certified metadata does not match the certificate entries")
    for entry, cert in zip(entries, certified, strict=True):
        entry["acc_datatype"] = cert["acc"]
        entry["register_datatype"] = cert["register"]


def check_widths_hold(model: ModelWrapper) -> None:
    """Invariant after every step: each MVAU/VVAU still has its certified accumulator.

    Catches a FINN pass that re-derives (MinimizeAccumulatorWidth) or resets the width.
    """
    from a2qflow.graph import hw_matmul_nodes

    certified = read_certified(model)
    nodes = hw_matmul_nodes(model)
    if len(certified) != len(nodes):
        raise AssertionError(f"{len(nodes)} MVAU/VVAU layers but {len(certified)} certified")
    for node, cert in zip(nodes, certified, strict=True):
        inst = getCustomOp(node)
        acc = inst.get_nodeattr("accDataType")
        if acc != cert["acc"]:
            raise AssertionError(f"{node.name}: accDataType {acc} != certified {cert['acc']}")
        if inst.get_nodeattr("noActivation"):
            out = inst.get_nodeattr("outputDataType")
            if out != cert["acc"]:
                raise AssertionError(f"{node.name}: output {out} != certified {cert['acc']}")
        elif len(node.input) > 2:
            tdt = model.get_tensor_datatype(node.input[2])
            if tdt != DataType[cert["register"]]:
                raise AssertionError(f"{node.name}: thresholds {tdt.name} != {cert['register']}")


def certificate_document(entries: list[dict[str, Any]], board: str, part: str,
                         versions: dict[str, str]) -> dict[str, Any]:
    return {
        "version": CERTIFICATE_VERSION,
        "board": board,
        "part": part,
        "tools": versions,
        "all_proven": all(e["verdict"] == "proven" for e in entries),
        "layers": entries,
    }


def certificate_table(cert: dict[str, Any]) -> str:
    """The certificate as a fixed-width text table (CLI and demo)."""
    head = (f"{'layer':12s} {'K':>5s} {'in':>4s} {'P':>4s} {'maxL1':>6s} {'A2Q':>7s} "
            f"{'A2Q+':>7s} {'dt':>6s} {'exact':>5s} {'chosen':>6s} {'FINN':>11s}  verdict")
    lines = [head, "-" * len(head)]
    for e in cert["layers"]:
        inp = f"{'s' if e['input_signed'] else 'u'}{e['input_bits']}"
        p = "-" if e["trained_p"] is None else str(e["trained_p"])
        dt = f"{e['datatype_bound']['classic']}/{e['datatype_bound']['tight']}"
        finn = f"{e['finn_default']}>{e['finn_minimized']}"
        verdict = (f"proven ({', '.join(e['proven_by'])})" if e["verdict"] == "proven"
                   else f"refused: {e['refusal']}")
        lines.append(
            f"{e['layer']:12s} {e['k']:5d} {inp:>4s} {p:>4s} {e['max_l1']:6d} "
            f"{e['a2q_l1_limit']:7.1f} {e['a2q_plus_l1_limit']:7.1f} {dt:>6s} "
            f"{e['exact_bits']:5d} {e['chosen']:>6s} {finn:>11s}  {verdict}"
        )
    lines.append("A2Q/A2Q+: L1 limits at the trained P (chosen width if unconstrained); "
                 "dt: data-type bound classic/tight; FINN: default > MinimizeAccumulatorWidth")
    return "\n".join(lines)
