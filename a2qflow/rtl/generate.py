"""Render Verilog-2005 for a :class:`~a2qflow.rtl.design.Design` from the ``hls/verilog`` templates.

The templates hold the structure; this module only turns layer records into template values
(memory words as hex, the adder tree as a list of additions). Jinja2 runs with
``StrictUndefined`` so a missing value fails the render instead of emitting broken Verilog.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import jinja2
import numpy as np

from a2qflow.rtl import unrolled
from a2qflow.rtl.design import Block, Design, MVAULayer

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "hls" / "verilog"
MAX_FIFO_DEPTH = 1024


@dataclass
class Rendered:
    """Verilog sources of one design: ``files`` maps file name to text."""

    top: str
    files: dict[str, str] = field(default_factory=dict)
    layer_modules: list[str] = field(default_factory=list)  # one per MVAU, in order
    glue_modules: list[str] = field(default_factory=list)  # FIFOs and width converters
    layer_facts: list[dict[str, object]] = field(default_factory=list)  # one per MVAU
    block_modules: list[str] = field(default_factory=list)  # one per StreamBlock, in order
    data: dict[str, str] = field(default_factory=dict)  # files the sources read, not compiled
    memory_files: dict[str, list[str]] = field(default_factory=dict)  # own MVAU -> its data files

    def module_text(self, module: str) -> str:
        return self.files[f"{module}.v"]


@dataclass(frozen=True)
class BlockSources:
    """A stream block built elsewhere (FINN's RTL, or a2qflow's max-pool): its stream-port
    top, its files in compile order, and how synthesis reads them."""

    module: str  # the top with a2qflow's stream ports
    files: dict[str, str]  # name -> text, in compile order (SystemVerilog packages first)
    backend: str  # e.g. "FINN RTL SWG": goes into every figure's label
    synth: dict[str, object]  # what synth needs: top, read_slang reads (none: read_verilog)
    note: str = ""
    data: dict[str, str] = field(default_factory=dict)  # memory files, stubs: not compiled


@dataclass(frozen=True)
class GlueSite:
    """A FIFO or width converter the top level puts between two blocks."""

    name: str  # its module name (and FINN node name, where FINN builds it)
    kind: str  # "fifo" | "dwc"
    in_elems: int
    out_elems: int
    bits: int
    signed: bool
    depth: int = 0  # FIFOs only

    @property
    def datatype(self) -> str:
        return f"{'INT' if self.signed else 'UINT'}{self.bits}"


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )


def module_name(text: str) -> str:
    """A Verilog identifier from a FINN node name."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).lower()
    return name if name[:1].isalpha() else f"m_{name}"


def _bits_for(count: int) -> int:
    """Counter width for values ``0 .. count-1`` (at least 1)."""
    return max(1, (count - 1).bit_length())


def pack_words(values: np.ndarray, bits: int) -> list[str]:
    """Rows of integers -> hex words, element 0 in the lowest ``bits`` bits (two's complement)."""
    mask = (1 << bits) - 1
    digits = max(1, math.ceil(values.shape[1] * bits / 4))
    words = []
    for row in values:
        word = 0
        for i, v in enumerate(row.tolist()):
            word |= (int(v) & mask) << (i * bits)
        words.append(f"{word:0{digits}x}")
    return words


def adder_tree(n: int) -> tuple[list[tuple[str, str, str | None]], str]:
    """A balanced tree summing leaves ``0_0 .. 0_{n-1}``: (dst, a, b or None) and the root."""
    adds: list[tuple[str, str, str | None]] = []
    level, names = 0, [f"0_{i}" for i in range(n)]
    while len(names) > 1:
        level += 1
        nxt = []
        for i in range(0, len(names), 2):
            dst = f"{level}_{i // 2}"
            adds.append((dst, names[i], names[i + 1] if i + 1 < len(names) else None))
            nxt.append(dst)
        names = nxt
    return adds, names[0]


def weight_words(layer: MVAULayer) -> list[str]:
    """Weight memory: address nf*SF+sf, lane p and element s at (p*SIMD+s)."""
    w = layer.weights.reshape(layer.nf, layer.pe, layer.sf, layer.simd)  # channel = nf*PE+p
    rows = w.transpose(0, 2, 1, 3).reshape(layer.nf * layer.sf, layer.pe * layer.simd)
    return pack_words(rows, layer.weight_bits)


def threshold_words(layer: MVAULayer) -> list[str]:
    """Threshold memory: word nf holds channel nf*PE+p's threshold i at (p*steps+i)."""
    assert layer.thresholds is not None
    return pack_words(layer.thresholds.reshape(layer.nf, -1), layer.register_bits)


# FINN's ram_style for an MVAU's weights as the Yosys attribute of a2qflow's weight ROM:
# "block" is BRAM; "distributed" is LUTs, which for a ROM Yosys builds as logic (its LUT
# RAM libraries prune ROMs); "auto" leaves the choice to Yosys's cost model. Thresholds: see
# has_threshold_memory
ROM_STYLE = {"auto": "", "block": "block", "distributed": "logic"}


def weight_file(module: str) -> str:
    """The memory file a folded MVAU module ``$readmemh``-s its weights from."""
    return f"{module}_weights.dat"


def threshold_file(module: str) -> str:
    """The memory file a folded MVAU ``$readmemh``-s its thresholds from when they are in
    BRAM (see :func:`has_threshold_memory`)."""
    return f"{module}_thresholds.dat"


def has_threshold_memory(layer: MVAULayer) -> bool:
    """Thresholds in a memory read with the result: only for ``ram_style_thresholds: block``.
    Otherwise they stay constants selected by the neuron fold, which Yosys folds into the
    comparators (a registered read would stop that: general comparators, and a register as
    wide as all PE lanes' thresholds)."""
    return (layer.style == "folded" and layer.thresholds is not None and layer.nf > 1
            and layer.ram_style_thresholds == "block")


def layer_data(layer: MVAULayer, module: str) -> dict[str, str]:
    """The files :func:`render_layer`'s module reads at elaboration (``$readmemh``), by name:
    a folded layer's weight words and, in BRAM, its threshold words; none for an unrolled
    layer (constants in logic)."""
    if layer.style == "unrolled":
        return {}
    data = {weight_file(module): "\n".join(weight_words(layer)) + "\n"}
    if has_threshold_memory(layer):
        data[threshold_file(module)] = "\n".join(threshold_words(layer)) + "\n"
    return data


def render_layer(layer: MVAULayer, module: str, env: jinja2.Environment | None = None) -> str:
    """The module's Verilog; a folded layer reads its weights from :func:`layer_data`'s file,
    which must sit beside it (in the simulator's or synthesizer's working directory)."""
    env = env or environment()
    if layer.style == "unrolled":
        return render_unrolled(layer, module, env)[0]
    ib = layer.input_bits
    if layer.input_signed:
        xsel = [f"$signed(x1[{s * ib} +: {ib}])" for s in range(layer.simd)]
    else:
        xsel = [f"$signed({{1'b0, x1[{s * ib} +: {ib}]}})" for s in range(layer.simd)]
    adds, root = adder_tree(layer.simd)
    steps = 0 if layer.thresholds is None else int(layer.thresholds.shape[1])
    thr_memory = has_threshold_memory(layer)
    ob = layer.output_bits
    ctx = {
        "module": module, "l": layer, "version": version("a2qflow"),
        "weight_file": weight_file(module), "rom_style": ROM_STYLE[layer.ram_style],
        "wmem_width": layer.pe * layer.simd * layer.weight_bits,
        "depth": layer.sf * layer.nf, "sf_bits": _bits_for(layer.sf),
        "nf_bits": _bits_for(layer.nf), "addr_bits": _bits_for(layer.sf * layer.nf),
        "prod_bits": ib + (0 if layer.input_signed else 1) + layer.weight_bits,
        "xsel": xsel, "adds": adds, "root": root, "steps": steps,
        "threshold_file": threshold_file(module), "thr_memory": thr_memory,
        "thr": threshold_words(layer) if steps and not thr_memory else [],
        "act_val": f"{ob}'d{layer.act_val % (1 << ob)}",
    }
    return env.get_template("mvau.v.j2").render(**ctx)


def layer_netlist(layer: MVAULayer) -> unrolled.Netlist:
    """The adder graph of an unrolled layer, as its generator builds it."""
    return unrolled.build_netlist(
        layer.weights, layer.input_bits, layer.input_signed, layer.generator,
        uniform_bits=layer.acc_bits if layer.widths == "uniform" else None,
        root_trim=layer.root_trim)


def render_unrolled(layer: MVAULayer, module: str, env: jinja2.Environment | None = None
                    ) -> tuple[str, dict[str, object]]:
    """A fully unrolled layer (SIMD = MW, PE = MH): Verilog and the facts design.json records."""
    env = env or environment()
    net = layer_netlist(layer)
    ib = layer.input_bits
    if layer.input_signed:
        inputs = [f"$signed(s_axis_tdata[{i * ib} +: {ib}])" for i in range(layer.mw)]
    else:
        inputs = [f"$signed({{1'b0, s_axis_tdata[{i * ib} +: {ib}]}})" for i in range(layer.mw)]
    channels = []
    for c, root in enumerate(net.roots):
        ge = ([] if layer.thresholds is None
              else unrolled.comparators(f"acc{c}", root, layer.thresholds[c]))
        channels.append({"index": c, "bits": root.bits, "expr": unrolled.root_expr(root),
                         "ge": ge})
    parts = unrolled.partition(net)
    shared, offset = [], 0
    for n in parts.shared:
        shared.append({"name": n.name, "bits": n.bits, "expr": unrolled.node_expr(n),
                       "offset": offset})
        offset += n.bits
    groups = [{"first": chans[0], "last": chans[-1], "channels": [channels[c] for c in chans],
               "nodes": [{"name": n.name, "bits": n.bits, "expr": unrolled.node_expr(n)}
                         for n in nodes]}
              for chans, nodes in parts.groups]
    ob = layer.output_bits
    label = net.generator if net.generator == "a2qflow" else (
        f"da4ml {unrolled.da4ml_version()} (CMVM graph rendered by a2qflow)")
    text = env.get_template("mvau_unrolled.v.j2").render(
        module=module, l=layer, net=net, version=version("a2qflow"), generator_label=label,
        root_trim=layer.root_trim, inputs=inputs, x_bits=ib + (0 if layer.input_signed else 1),
        shared=shared, shared_bits=offset, groups=groups,
        steps=0 if layer.thresholds is None else layer.thresholds.shape[1],
        act_val=f"{ob}'d{layer.act_val % (1 << ob)}")
    facts = unrolled.layer_facts(net)
    facts["generator_label"] = label
    # synth maps each partition on its own and sums them (the top only wires them)
    facts["partitions"] = [f"{module}_shared", *(f"{module}_g{g}" for g in range(len(groups)))]
    return text, facts


def render_any_layer(layer: MVAULayer, module: str, env: jinja2.Environment
                     ) -> tuple[str, dict[str, object]]:
    """Either style, with the facts design.json records (style, non-zero weights, ...)."""
    if layer.style == "unrolled":
        return render_unrolled(layer, module, env)
    return render_layer(layer, module, env), folded_facts(layer)


def folded_facts(layer: MVAULayer) -> dict[str, object]:
    """What design.json records of a folded layer, whoever builds it."""
    return {"style": "folded", "nonzero_weights": int(np.count_nonzero(layer.weights))}


def fifo_depth(producer: Block, consumer: Block) -> int:
    """Room for one whole input vector of an MVAU consumer (or one output vector of an MVAU
    producer), in the producer's beats, as a power of two; 2 between stream blocks.

    A consumer with NF > 1 reads its input only in its first neuron fold; without a vector of
    slack the producer stalls during the other folds and the chain runs below FINN's
    estimate (FINN sizes these FIFOs by simulation, InsertAndSetFIFODepths)."""
    if isinstance(consumer, MVAULayer):
        beats = consumer.mw // producer.out_elems
    elif isinstance(producer, MVAULayer):
        beats = producer.nf
    else:
        beats = 2
    return min(MAX_FIFO_DEPTH, max(2, 1 << (beats - 1).bit_length()))


def render_fifo(module: str, width: int, depth: int = 2,
                env: jinja2.Environment | None = None) -> str:
    if depth < 2 or depth & (depth - 1):
        raise ValueError(f"FIFO depth must be a power of two >= 2, got {depth}")
    env = env or environment()
    return env.get_template("fifo.v.j2").render(module=module, width=width, depth=depth,
                                                ptr_bits=depth.bit_length())


def render_dwc(module: str, in_elems: int, out_elems: int, bits: int,
               env: jinja2.Environment | None = None) -> str:
    big, small = max(in_elems, out_elems), min(in_elems, out_elems)
    if big % small:
        raise ValueError(f"width converter {in_elems}->{out_elems} needs a multiple")
    env = env or environment()
    return env.get_template("dwc.v.j2").render(
        module=module, in_elems=in_elems, out_elems=out_elems, bits=bits, ratio=big // small,
        cnt_bits=_bits_for(big // small))


def glue_sites(producer: Block, consumer: Block, index: int, prefix: str = "",
               backend: str = "own") -> list[GlueSite]:
    """The FIFO after block ``index`` and the width converters to the next block's beat.

    a2qflow's converter changes the beat by a whole factor, so between beats that do not
    divide each other it goes through their least common multiple; FINN's converts any two."""
    bits, signed = producer.out_bits, producer.out_signed
    sites = [GlueSite(module_name(f"{prefix}fifo_{index}"), "fifo", producer.out_elems,
                      producer.out_elems, bits, signed, fifo_depth(producer, consumer))]
    chain = [producer.out_elems, consumer.in_elems]
    if backend == "own" and chain[0] % chain[1] and chain[1] % chain[0]:
        chain = [chain[0], math.lcm(*chain), chain[1]]
    for j, (a, b) in enumerate(zip(chain, chain[1:], strict=False)):
        if a != b:
            sites.append(GlueSite(module_name(f"{prefix}dwc_{index}_{j}"), "dwc", a, b, bits,
                                  signed))
    return sites


def render_design(design: Design, top: str = "a2q_top", prefix: str = "",
                  blocks: dict[str, BlockSources] | None = None) -> Rendered:
    """Every layer, the FIFOs and width converters between them, and the top level.

    ``blocks``: the sources of what a2qflow does not render itself, by block name (sliding
    windows, max-pools, FINN MVUs) or glue site name (FINN FIFOs and converters); their files
    are added as they are."""
    env = environment()
    out = Rendered(top=top)
    stages: list[dict[str, object]] = []

    def add(module: str, text: str, kind: str, width: int) -> None:
        out.files[f"{module}.v"] = text
        stages.append({"module": module, "kind": kind, "width": width})

    blocks = blocks or {}

    def take(name: str, kind: str, width: int, what: str) -> str:
        built = blocks.get(name)
        if built is None:
            raise ValueError(f"no sources given for the {what} {name}")
        for target, files in ((out.files, built.files), (out.data, built.data)):
            for file, text in files.items():
                if target.setdefault(file, text) != text:
                    raise ValueError(f"{file}: two blocks bring different texts")
        stages.append({"module": built.module, "kind": kind, "width": width})
        return built.module

    for i, block in enumerate(design.blocks):
        if isinstance(block, MVAULayer) and block.backend == "own":
            name = module_name(f"{prefix}{block.name}")
            text, facts = render_any_layer(block, name, env)
            add(name, text, "mvau", block.in_width)
            memory = layer_data(block, name)
            out.data.update(memory)
            out.memory_files[name] = list(memory)
            out.layer_modules.append(name)
            out.layer_facts.append(facts)
        elif isinstance(block, MVAULayer):
            out.layer_modules.append(take(block.name, "mvau", block.in_width, "FINN MVU"))
            out.layer_facts.append(folded_facts(block))
        else:
            out.block_modules.append(take(block.name, block.kind, block.in_width,
                                          f"{block.kind} block"))
        if i + 1 == len(design.blocks):
            break
        for site in glue_sites(block, design.blocks[i + 1], i, prefix, design.glue_backend):
            width = site.in_elems * site.bits
            if design.glue_backend == "own":
                text = (render_fifo(site.name, width, site.depth, env) if site.kind == "fifo"
                        else render_dwc(site.name, site.in_elems, site.out_elems, site.bits,
                                        env))
                add(site.name, text, site.kind, width)
                out.glue_modules.append(site.name)
            else:
                out.glue_modules.append(take(site.name, site.kind, width, site.kind))
    first, last = design.blocks[0], design.blocks[-1]
    in_note = (f"{first.in_elems} x {'s' if first.in_signed else 'u'}{first.in_bits} per beat "
               f"({design.in_tensor})")
    out_note = (f"{last.out_elems} x {'s' if last.out_signed else 'u'}{last.out_bits} per beat "
                f"({design.out_tensor})")
    out.files[f"{top}.v"] = env.get_template("top.v.j2").render(
        module=top, stages=stages, in_width=design.in_width, out_width=design.out_width,
        in_note=in_note, out_note=out_note, version=version("a2qflow"))
    return out
