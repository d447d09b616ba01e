"""Verilator simulation of generated designs against FINN's Python execution, bit for bit.

One harness holds independent stream groups, built once: the whole network at full rate on
the test images (cycles per image measured there), and per MVAU the worst-case vectors of
``bounds.worst_case_inputs`` through (a) the layer as generated, (b) its accumulator at the
certified width and (c) its accumulator one bit narrower -- the negative control, which must
mismatch. (b) and (c) run with random input gaps and output back-pressure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.graph import integer_array
from a2qflow.rtl.generate import environment, pack_words
from a2qflow.tools.verilator import Verilator

HARNESS = "a2q_tb"
HLS_VERILATOR = Path(__file__).resolve().parents[2] / "hls" / "verilator"


@dataclass(frozen=True)
class Port:
    """Stream geometry: ``elems`` values of ``bits`` per beat, ``length`` values per vector."""

    elems: int
    bits: int
    signed: bool
    length: int

    @property
    def width(self) -> int:
        return self.elems * self.bits


@dataclass
class Group:
    """One device under test in the harness, with its vectors and expected outputs."""

    label: str
    module: str
    inp: Port
    out: Port
    vectors: np.ndarray  # (n, inp.length) integers
    expected: np.ndarray  # (n, out.length) integers
    stress: bool = False

    @property
    def expected_beats(self) -> int:
        return len(self.vectors) * self.out.length // self.out.elems


@dataclass
class GroupResult:
    label: str
    outputs: np.ndarray
    cycles: np.ndarray  # cycle of every output beat

    def compare(self, expected: np.ndarray) -> dict[str, Any]:
        bad = np.argwhere(self.outputs != expected)
        first = None
        if len(bad):
            v, c = (int(i) for i in bad[0])
            first = {"vector": v, "channel": c, "expected": int(expected[v, c]),
                     "actual": int(self.outputs[v, c])}
        return {"compared": int(expected.size), "mismatches": int(len(bad)),
                "first_mismatch": first}


def to_beats(vectors: np.ndarray, port: Port) -> list[str]:
    return pack_words(np.asarray(vectors, dtype=np.int64).reshape(-1, port.elems), port.bits)


def from_beats(words: list[int], port: Port, n: int) -> np.ndarray:
    mask = (1 << port.bits) - 1
    values = np.zeros((len(words), port.elems), dtype=np.int64)
    for b, word in enumerate(words):
        for e in range(port.elems):
            v = (word >> (e * port.bits)) & mask
            if port.signed and v >> (port.bits - 1):
                v -= 1 << port.bits
            values[b, e] = v
    return values.reshape(n, port.length)


def simulate(groups: list[Group], sources: dict[str, str], work: Path,
             verilator: Verilator, max_cycles: int = 50_000_000,
             data: dict[str, str] | None = None) -> tuple[list[GroupResult], dict[str, float]]:
    """Write the harness and sources into ``work``, build with Verilator, run, parse outputs.

    ``data``: files the sources read at run time ($readmemh), written beside them."""
    work.mkdir(parents=True, exist_ok=True)
    env = environment()
    env.loader = _loader()
    specs = [{"module": g.module, "label": g.label, "in_width": g.inp.width,
              "out_width": g.out.width, "stress": g.stress,
              "expected_beats": g.expected_beats} for g in groups]
    files = dict(sources)
    files[f"{HARNESS}.v"] = env.get_template("harness.v.j2").render(module=HARNESS, groups=specs)
    for name, text in {**files, **(data or {})}.items():
        (work / name).write_text(text)
    (work / "tb.cpp").write_text(env.get_template("tb.cpp.j2").render(
        module=HARNESS, groups=specs, max_cycles=max_cycles))
    for i, g in enumerate(groups):
        (work / f"in_{i}.hex").write_text("\n".join(to_beats(g.vectors, g.inp)) + "\n")
    t0 = time.perf_counter()
    exe = verilator.build([Path(n) for n in files], HARNESS, Path("tb.cpp"), work)
    built = round(time.perf_counter() - t0, 3)
    run = verilator.run(exe, work)
    results = []
    for i, g in enumerate(groups):
        lines = (work / f"out_{i}.txt").read_text().split()
        cycles = np.array([int(c) for c in lines[0::2]], dtype=np.int64)
        words = [int(h, 16) for h in lines[1::2]]
        if len(words) != g.expected_beats:
            outputs = np.full_like(g.expected, np.iinfo(np.int64).min)
        else:
            outputs = from_beats(words, g.out, len(g.vectors))
        results.append(GroupResult(g.label, outputs, cycles))
    return results, {"build_seconds": built, "run_seconds": run.seconds}


def _loader() -> Any:
    import jinja2

    return jinja2.FileSystemLoader(str(HLS_VERILATOR))


# --- FINN references ------------------------------------------------------------------------


def finn_tensors(hw: ModelWrapper, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """FINN Python execution of the HW-layer graph, one sample at a time; the named tensors."""
    from finn.core.onnx_exec import execute_onnx

    iname = hw.graph.input[0].name
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(len(x)):
        ctx = execute_onnx(hw, {iname: x[i:i + 1]}, return_full_exec_context=True)
        for n in names:
            out[n].append(np.asarray(ctx[n]).reshape(1, -1))
    return [integer_array(np.concatenate(out[n]), n) for n in names]
