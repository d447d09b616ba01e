"""Fully unrolled constant-weight MVAUs: one input vector per clock, weights as constants.

A layer folded with SIMD = MW and PE = MH (FINN's way of saying "unrolled") becomes a
constant matrix-vector product in logic. Zero weights build nothing, and every adder is as
wide as the exact range of the partial sum it produces (``bounds.exact_accumulator_range`` of
that node's linear function of the inputs), so each channel's root is the channel's own exact
width. Thresholds become constant comparators at that width; the outputs are registered
and the ports are the folded MVAU's AXI-Stream ports, so FIFOs and the top level are unchanged.

Two generators build the same :class:`Netlist` (a list of shift-add nodes):

- ``a2qflow``: per channel, a balanced adder tree over the products of its non-zero weights;
- ``da4ml``: da4ml's constant matrix-vector solution (``da4ml.cmvm.solve``: a shift-add graph
  with common subexpressions shared across channels), rendered by a2qflow. Only da4ml's graph
  structure (operands, shifts, signs) is used; every width is recomputed here from each node's
  coefficients over the inputs, and the coefficients of every channel's root are checked to be
  that channel's weights, so the graph is proven to compute the layer before it is rendered.

Widths ``"exact"`` (per node) or ``"uniform"`` (every node and root at the layer's ``acc_bits``,
e.g. 32 for the comparison variant). ``root_trim`` narrows every channel's root by that many
bits: the negative control, which must overflow on the channel's worst-case vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from a2qflow import bounds
from a2qflow.errors import A2QFlowError

GENERATORS = ("a2qflow", "da4ml")
DEFAULT_GENERATOR = "a2qflow"


@dataclass(frozen=True)
class Node:
    """``value = sum(coef * (src << shift))`` over ``terms``, held in a signed ``bits`` wire.

    ``src`` is another node or an input ``x<i>``; a negative shift is an exact right shift."""

    name: str
    terms: tuple[tuple[int, str, int], ...]
    lo: int
    hi: int
    bits: int
    adds: int  # two-operand adders this node costs (terms - 1; 0 for a product ``x * m``)


@dataclass(frozen=True)
class Root:
    """A channel's accumulator: ``sign * (node << shift)`` or constant zero (``node`` None)."""

    node: str | None
    sign: int
    shift: int
    lo: int
    hi: int
    bits: int  # the channel's exact width (or the uniform width)


@dataclass
class Netlist:
    generator: str
    mw: int
    input_bits: int
    input_signed: bool
    nodes: list[Node] = field(default_factory=list)
    roots: list[Root] = field(default_factory=list)
    nonzero_weights: int = 0
    widths: str = "exact"

    @property
    def adders(self) -> int:
        return sum(n.adds for n in self.nodes)

    @property
    def product_leaves(self) -> int:
        return sum(1 for n in self.nodes if n.adds == 0)

    @property
    def channel_bits(self) -> list[int]:
        return [r.bits for r in self.roots]

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Bit-true integer model of the netlist (every wire wraps at its width): (n, MH)."""
        x = np.asarray(x, dtype=object)
        vals: dict[str, np.ndarray] = {f"x{i}": x[:, i] for i in range(self.mw)}
        for n in self.nodes:
            acc = np.zeros(len(x), dtype=object)
            for coef, src, shift in n.terms:
                acc = acc + coef * _shift(vals[src], shift)
            vals[n.name] = _wrap(acc, n.bits)
        out = np.zeros((len(x), len(self.roots)), dtype=object)
        for c, r in enumerate(self.roots):
            if r.node is not None:
                out[:, c] = _wrap(r.sign * _shift(vals[r.node], r.shift), r.bits)
        return out.astype(np.int64)


def _shift(v: np.ndarray, k: int) -> np.ndarray:
    return v * (1 << k) if k >= 0 else v // (1 << -k)


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return (v + half) % (1 << bits) - half


class _Builder:
    """Nodes with their exact ranges, from integer coefficient vectors over the inputs."""

    def __init__(self, mw: int, x_lo: int, x_hi: int, uniform_bits: int | None) -> None:
        self.x_lo, self.x_hi, self.uniform = x_lo, x_hi, uniform_bits
        self.nodes: list[Node] = []
        self.coef: dict[str, np.ndarray] = {}
        for i in range(mw):
            unit = np.zeros(mw, dtype=np.int64)
            unit[i] = 1
            self.coef[f"x{i}"] = unit

    def add(self, name: str, terms: list[tuple[int, str, int]]) -> str:
        coef = sum(c * _coef_shift(self.coef[s], k) for c, s, k in terms)
        rng = bounds.exact_accumulator_range(coef, self.x_lo, self.x_hi)
        lo, hi = int(rng.lo[0]), int(rng.hi[0])
        bits = bounds.signed_bits_for_range(lo, hi)
        if self.uniform is not None:
            bits = max(bits, self.uniform)
        self.nodes.append(Node(name, tuple(terms), lo, hi, bits, len(terms) - 1))
        self.coef[name] = coef
        return name

    def root(self, node: str | None, sign: int, shift: int, weights: np.ndarray,
             trim: int) -> Root:
        rng = bounds.exact_accumulator_range(weights, self.x_lo, self.x_hi)
        lo, hi = int(rng.lo[0]), int(rng.hi[0])
        if node is None and np.any(weights):
            raise A2QFlowError("an unrolled channel with non-zero weights has no adder graph",
                               "report the build (generator bug)")
        if node is not None:
            got = sign * _coef_shift(self.coef[node], shift)
            if not np.array_equal(got, weights):
                raise A2QFlowError("an unrolled channel's adder graph does not compute its "
                                   "weights", "report the build (generator bug)")
        bits = bounds.signed_bits_for_range(lo, hi)
        if self.uniform is not None:
            bits = max(bits, self.uniform)
        if bits > 1:
            bits -= trim
        return Root(node, sign, shift, lo, hi, bits)


def _coef_shift(c: np.ndarray, k: int) -> np.ndarray:
    if k >= 0:
        return c * (1 << k)
    if np.any(c % (1 << -k)):
        raise A2QFlowError("a right shift in the adder graph drops bits",
                           "report the build (generator bug)")
    return c // (1 << -k)


def build_netlist(weights: np.ndarray, input_bits: int, input_signed: bool,
                  generator: str = DEFAULT_GENERATOR, uniform_bits: int | None = None,
                  root_trim: int = 0) -> Netlist:
    """The constant matrix-vector product ``y[c] = sum_i w[c, i] * x[i]`` as a netlist."""
    if generator not in GENERATORS:
        raise A2QFlowError(f"unknown unrolled generator {generator!r}",
                           f"use one of {', '.join(GENERATORS)}")
    w = np.asarray(weights, dtype=np.int64)
    mh, mw = w.shape
    x_lo, x_hi = bounds.input_range(input_bits, input_signed)
    b = _Builder(mw, x_lo, x_hi, uniform_bits)
    outs = _own_tree(b, w) if generator == "a2qflow" else _da4ml_graph(b, w, x_lo, x_hi)
    roots = [b.root(n, s, k, w[c], root_trim) for c, (n, s, k) in enumerate(outs)]
    return Netlist(generator, mw, input_bits, input_signed, b.nodes, roots,
                   int(np.count_nonzero(w)), "exact" if uniform_bits is None else "uniform")


def _own_tree(b: _Builder, w: np.ndarray) -> list[str | None]:
    """Per channel, a balanced adder tree over its non-zero weights' products.

    A product ``x_i * q`` is ``sign(q) * ((x_i * m) << k)`` with ``m`` odd, so each input
    needs one product node per odd magnitude above 1 that any channel uses (``x * 3``, ``x * 5``,
    ``x * 7`` for 4-bit weights), shared by every channel; the rest is shifts and signs, which
    cost nothing. Flat synthesis merges equal products anyway; building them once here keeps
    that sharing when a layer is synthesized in partitions."""
    products: dict[tuple[int, int], str] = {}

    def term(i: int, q: int) -> tuple[int, str, int]:
        mag, shift = abs(q), 0
        while mag % 2 == 0:
            mag, shift = mag // 2, shift + 1
        if mag == 1:
            return (1 if q > 0 else -1, f"x{i}", shift)
        if (i, mag) not in products:
            products[(i, mag)] = b.add(f"m{i}_{mag}", [(mag, f"x{i}", 0)])
        return (1 if q > 0 else -1, products[(i, mag)], shift)

    tops: list[tuple[str | None, int, int]] = []
    for c, row in enumerate(w):
        terms = [term(i, int(q)) for i, q in enumerate(row.tolist()) if q != 0]
        level = 0
        while len(terms) > 1:
            level += 1
            nxt = [(1, b.add(f"s{c}_{level}_{j // 2}", [terms[j], terms[j + 1]]), 0)
                   for j in range(0, len(terms) - 1, 2)]
            if len(terms) % 2:
                nxt.append(terms[-1])
            terms = nxt
        tops.append((terms[0][1], terms[0][0], terms[0][2]) if terms else (None, 1, 0))
    return tops


def _da4ml_graph(b: _Builder, w: np.ndarray, x_lo: int,
                 x_hi: int) -> list[tuple[str | None, int, int]]:
    """Render da4ml's CMVM solution into nodes: per channel (node, sign, shift)."""
    pipeline = _da4ml_solve(w.T.astype(np.float32).tobytes(), w.shape[1], w.shape[0],
                            float(x_lo), float(x_hi))
    # every value is (node, sign, exponent): real value = sign * node * 2^exponent
    values: list[tuple[str | None, int, int]] = [(f"x{i}", 1, 0) for i in range(w.shape[1])]
    for st, sol in enumerate(pipeline.solutions):
        buf: list[tuple[str | None, int, int]] = []
        for i, op in enumerate(sol.ops):
            if op.opcode == -1:
                src, sign, e = values[op.id0]
                buf.append((src, sign, e + int(sol.inp_shifts[op.id0])))
            elif op.opcode in (0, 1):
                (na, sa, ea), (nb, sb, eb) = buf[op.id0], buf[op.id1]
                eb += int(op.data)
                sb = sb if op.opcode == 0 else -sb
                if na is None or nb is None:
                    raise A2QFlowError("da4ml's graph adds a constant zero",
                                       f"da4ml {da4ml_version()} is not supported")
                e = min(ea, eb)
                name = b.add(f"d{st}_{i}", [(sa, na, ea - e), (sb, nb, eb - e)])
                buf.append((name, 1, e))
            else:
                raise A2QFlowError(f"da4ml's graph uses operation {op.opcode}",
                                   f"a2qflow renders only shift-adds; pin da4ml "
                                   f"(installed {da4ml_version()})")
        values = []
        for idx, shift, neg in zip(sol.out_idxs, sol.out_shifts, sol.out_negs, strict=True):
            if idx < 0:
                values.append((None, 1, 0))
                continue
            n, s, e = buf[idx]
            values.append((n, -s if neg else s, e + int(shift)))
    return [(n, s, e) for n, s, e in values]


@lru_cache(maxsize=64)
def _da4ml_solve(kernel: bytes, mw: int, mh: int, x_lo: float, x_hi: float) -> Any:
    try:
        from da4ml.cmvm import solve
    except ImportError as exc:
        raise A2QFlowError("the da4ml generator needs the da4ml package",
                           "run `make install` (requirements/toolchain.txt pins it)") from exc
    k = np.frombuffer(kernel, dtype=np.float32).reshape(mw, mh)
    return solve(k.copy(), qintervals=[(x_lo, x_hi, 1.0)] * mw)


def da4ml_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("da4ml")
    except PackageNotFoundError:
        return "not installed"


PARTITION_NODES = 256  # a channel group's nodes: small enough for Yosys to map in seconds


@dataclass(frozen=True)
class Partition:
    """An unrolled layer cut into modules that synthesize on their own: the nodes more than
    one channel group uses (``shared``), then per group its channels and the nodes only it
    uses. Every node is in exactly one module, so the modules' cells sum to the layer's."""

    shared: list[Node]
    groups: list[tuple[list[int], list[Node]]]


def partition(net: Netlist, nodes_per_group: int | None = None) -> Partition:
    """Consecutive channels in groups whose channels reach at most ``nodes_per_group`` nodes
    between them (counted per channel; at least one channel each); a node reachable from two
    groups goes to ``shared``."""
    budget = PARTITION_NODES if nodes_per_group is None else nodes_per_group
    by_name = {n.name: n for n in net.nodes}
    reach: list[set[str]] = []
    for r in net.roots:
        seen: set[str] = set()
        todo = [r.node] if r.node in by_name else []
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += [src for _, src, _ in by_name[name].terms if src in by_name]
        reach.append(seen)
    groups: list[list[int]] = []
    cost = 0
    for c, nodes in enumerate(reach):
        if not groups or cost + len(nodes) > budget:
            groups.append([])
            cost = 0
        groups[-1].append(c)
        cost += len(nodes)
    users: dict[str, set[int]] = {}
    for g, chans in enumerate(groups):
        for c in chans:
            for name in reach[c]:
                users.setdefault(name, set()).add(g)
    shared = [n for n in net.nodes if len(users.get(n.name, ())) > 1]
    own = [(chans, [n for n in net.nodes if users.get(n.name) == {g}])
           for g, chans in enumerate(groups)]
    return Partition(shared, own)


# --- Verilog ---------------------------------------------------------------------------------


def term_expr(coef: int, src: str, shift: int) -> str:
    """One term as a signed Verilog expression (context-sized by the wire it feeds)."""
    s = src if shift == 0 else f"({src} <<< {shift})" if shift > 0 else f"({src} >>> {-shift})"
    if coef == 1:
        return s
    if coef == -1:
        return f"-{s}"
    mag = abs(coef)
    lit = f"{mag.bit_length() + 1}'sd{mag}"
    return f"({s} * {lit})" if coef > 0 else f"-({s} * {lit})"


def node_expr(node: Node) -> str:
    parts = [term_expr(c, s, k) for c, s, k in node.terms]
    out = parts[0]
    for p in parts[1:]:
        out += f" - {p[1:]}" if p.startswith("-") else f" + {p}"
    return out


def root_expr(root: Root) -> str:
    if root.node is None:
        return f"{root.bits}'sd0"
    return term_expr(root.sign, root.node, root.shift)


def signed_literal(value: int, bits: int) -> str:
    """``value`` as a ``bits``-wide signed Verilog literal (two's complement hex)."""
    return f"$signed({bits}'h{value & ((1 << bits) - 1):x})"


def comparators(acc: str, root: Root, thresholds: np.ndarray) -> list[str]:
    """Per threshold, ``acc >= T`` as Verilog; constant where T lies outside the channel's
    exact range (never reached, or always passed)."""
    out = []
    for t in thresholds.tolist():
        if t <= root.lo:
            out.append("1'b1")
        elif t > root.hi:
            out.append("1'b0")
        else:  # inside the range, so it fits the channel's width
            out.append(f"({acc} >= {signed_literal(int(t), root.bits)})")
    return out


def layer_facts(net: Netlist) -> dict[str, Any]:
    """What design.json records about an unrolled layer (synth copies it into synth.json)."""
    return {"style": "unrolled", "generator": net.generator, "widths": net.widths,
            "nonzero_weights": net.nonzero_weights, "adders": net.adders,
            "product_leaves": net.product_leaves, "channel_bits": net.channel_bits,
            "adder_bits_total": sum(n.bits for n in net.nodes if n.adds)}
