"""The Vivado path: the missing-tools refusal and the utilization report parser."""

from __future__ import annotations

import json

import pytest
from fixtures_build import compiled_build  # noqa: F401  (fixture)

from a2qflow import bitstream
from a2qflow.errors import A2QFlowError
from a2qflow.finn_env import vivado_status

REPORT_7SERIES = """\
Copyright 1986-2022 Xilinx, Inc. All Rights Reserved.
-----------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2022.2 (lin64) Build 3671981 Fri Oct 14 04:59:54 MDT 2022
| Date         : Mon Nov 23 10:00:00 2026
| Host         : build running 64-bit Ubuntu 22.04.3 LTS
| Command      : report_utilization -file finn_design_wrapper_utilization_synth.rpt
| Design       : finn_design_wrapper
| Device       : xc7z020clg400-1
| Speed File   : -1
| Design State : Synthesized
-----------------------------------------------------------------------------------------------

Utilization Design Information

Table of Contents
-----------------
1. Slice Logic
1.1 Summary of Registers by Type
2. Memory
3. DSP

1. Slice Logic
--------------

+----------------------------+------+-------+------------+-----------+-------+
|          Site Type         | Used | Fixed | Prohibited | Available | Util% |
+----------------------------+------+-------+------------+-----------+-------+
| Slice LUTs*                | 4821 |     0 |          0 |     53200 |  9.06 |
|   LUT as Logic             | 4517 |     0 |          0 |     53200 |  8.49 |
|   LUT as Memory            |  304 |     0 |          0 |     17400 |  1.75 |
| Slice Registers            | 6234 |     0 |          0 |    106400 |  5.86 |
|   Register as Flip Flop    | 6234 |     0 |          0 |    106400 |  5.86 |
|   Register as Latch        |    0 |     0 |          0 |    106400 |  0.00 |
| F7 Muxes                   |   12 |     0 |          0 |     26600 |  0.05 |
| F8 Muxes                   |    0 |     0 |          0 |     13300 |  0.00 |
+----------------------------+------+-------+------------+-----------+-------+
* Warning! The Final LUT count, after physical optimizations and full implementation,
  is typically lower.

2. Memory
---------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    |  3.5 |     0 |          0 |       140 |  2.50 |
|   RAMB36/FIFO*    |    3 |     0 |          0 |       140 |  2.14 |
|   RAMB18          |    1 |     0 |          0 |       280 |  0.36 |
+-------------------+------+-------+------------+-----------+-------+

3. DSP
------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |    2 |     0 |          0 |       220 |  0.91 |
|   DSP48E1 only |    2 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+
"""

REPORT_ULTRASCALE = """\
Copyright 1986-2020 Xilinx, Inc. All Rights Reserved.
-------------------------------------------------------------------------------------------------
| Tool Version : Vivado v.2020.1 (lin64) Build 2902540 Wed May 27 19:54:35 MDT 2020
| Command      : report_utilization -file top_utilization_synth.rpt
| Design       : MVAU_hls_1
| Device       : xczu7evffvc1156-2
| Design State : Synthesized
-------------------------------------------------------------------------------------------------

1. CLB Logic
------------

+-------------------------+------+-------+-----------+-------+
|        Site Type        | Used | Fixed | Available | Util% |
+-------------------------+------+-------+-----------+-------+
| CLB LUTs*               |  812 |     0 |    230400 |  0.35 |
|   LUT as Logic          |  812 |     0 |    230400 |  0.35 |
| CLB Registers           |  903 |     0 |    460800 |  0.20 |
+-------------------------+------+-------+-----------+-------+

2. BLOCKRAM
-----------

+-------------------+------+-------+-----------+-------+
|     Site Type     | Used | Fixed | Available | Util% |
+-------------------+------+-------+-----------+-------+
| Block RAM Tile    |    1 |     0 |       312 |  0.32 |
|   RAMB36/FIFO*    |    1 |     0 |       312 |  0.32 |
|   RAMB18          |    0 |     0 |       624 |  0.00 |
| URAM              |    4 |     0 |        96 |  4.17 |
+-------------------+------+-------+-----------+-------+

3. ARITHMETIC
-------------

+----------------+------+-------+-----------+-------+
|    Site Type   | Used | Fixed | Available | Util% |
+----------------+------+-------+-----------+-------+
| DSPs           |    0 |     0 |      1728 |  0.00 |
+----------------+------+-------+-----------+-------+
"""


def test_parses_a_7series_report():
    r = bitstream.parse_utilization_report(REPORT_7SERIES)
    assert r == {"design": "finn_design_wrapper", "device": "xc7z020clg400-1",
                 "tool": "Vivado 2022.2", "state": "Synthesized", "LUT": 4821, "FF": 6234,
                 "BRAM36": 3.5, "BRAM18": 7, "URAM": 0, "DSP": 2}


def test_parses_an_ultrascale_report_into_synth_json_schema():
    r = bitstream.parse_utilization_report(REPORT_ULTRASCALE)
    assert (r["LUT"], r["FF"], r["BRAM18"], r["URAM"], r["DSP"]) == (812, 903, 2, 4, 0)
    assert r["tool"] == "Vivado 2020.1"
    doc = bitstream.synth_document([r], "zcu104")
    assert doc["designs"]["MVAU_hls_1"]["LUT"] == 812 and doc["tool"] == "Vivado 2020.1"
    json.dumps(doc)


def test_rejects_text_that_is_not_a_report():
    with pytest.raises(A2QFlowError, match="not a Vivado utilization report"):
        bitstream.parse_utilization_report("hello\n| Used | 3 |\n")
    truncated = REPORT_7SERIES.split("2. Memory\n---")[0]
    with pytest.raises(A2QFlowError, match="lacks BRAM36, DSP"):
        bitstream.parse_utilization_report(truncated)


def test_status_lists_each_missing_tool(tmp_path):
    status = vivado_status({"PATH": str(tmp_path)})
    assert not status.available
    assert any("XILINX_VIVADO is not set" in m for m in status.missing)
    assert any("Vitis HLS not found" in m for m in status.missing)
    fake = tmp_path / "Vivado" / "2022.2"
    status = vivado_status({"XILINX_VIVADO": str(fake), "PATH": str(tmp_path)})
    assert any("has no bin/vivado" in m for m in status.missing)


def test_missing_vivado_stops_before_doing_anything(tmp_path, monkeypatch):
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    monkeypatch.delenv("XILINX_HLS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(A2QFlowError) as err:
        bitstream.run(tmp_path / "no-such-build")
    assert "XILINX_VIVADO is not set" in err.value.problem
    assert "Vitis HLS not found" in err.value.problem
    assert "a2qflow rtl" in err.value.fix and "a2qflow synth" in err.value.fix
    assert "finn/codegen" in err.value.fix
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.vivado
@pytest.mark.skipif(not vivado_status().available, reason="needs Vivado and Vitis HLS")
def test_vivado_flow_writes_synth_json(compiled_build):  # noqa: F811
    build = compiled_build("a2q+", 12)
    synth = bitstream.run(build)
    assert synth["tool"].startswith("Vivado") and synth["designs"]
