"""The board catalogue: every board loads, matches FINN's part map, and bad files are refused."""

from __future__ import annotations

import pytest
import yaml
from finn.util.basic import part_map

from a2qflow.boards import RESOURCE_KEYS, Family, ShellFlow, board_names, load_board, load_boards
from a2qflow.errors import A2QFlowError

REQUIRED = {"pynq-z1", "pynq-z2", "ultra96v2", "zcu102", "zcu104", "kv260", "u50", "u200",
            "u250", "u280"}


def test_catalogue_has_every_required_board():
    assert set(board_names()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_board_is_consistent(name):
    board = load_board(name)
    assert board.name == name
    assert part_map[board.finn_board] == board.part
    assert set(board.resources) == set(RESOURCE_KEYS) and board.resources["LUT"] > 0
    alveo = board.family is Family.ALVEO
    assert (board.shell_flow is ShellFlow.VITIS_ALVEO) == alveo
    assert board.yosys_family.value == ("xc7" if board.family is Family.ZYNQ7000 else "xcup")
    assert board.clock_ns > 0


def test_zynq7020_totals_match_the_data_sheet():
    z1 = load_board("pynq-z1")
    assert z1.resources == {"LUT": 53200, "FF": 106400, "BRAM18": 280, "URAM": 0, "DSP": 220}


def test_utilization():
    z1 = load_board("pynq-z1")
    util = z1.utilization({"LUT": 5320, "DSP": 22})
    assert util["LUT"] == pytest.approx(0.1) and util["DSP"] == pytest.approx(0.1)
    assert util["URAM"] is None  # the part has none


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(A2QFlowError, match="unknown board 'pynq-z9'") as err:
        load_board("pynq-z9")
    assert "zcu104" in err.value.fix


def test_malformed_board_files_are_refused(tmp_path):
    good = yaml.safe_load(load_board.__globals__["BOARDS_DIR"].joinpath("zcu104.yaml").read_text())
    cases = {
        "missing": {k: v for k, v in good.items() if k != "part"},
        "family": {**good, "family": "virtex"},
        "resources": {**good, "resources": {**good["resources"], "DSP": -1}},
        "clock": {**good, "clock_ns": 0},
    }
    for name, data in cases.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(A2QFlowError, match=f"{name}.yaml"):
            load_board(name, tmp_path)
    (tmp_path / "bad.yaml").write_text("part: [unclosed")
    with pytest.raises(A2QFlowError, match="not valid YAML"):
        load_board("bad", tmp_path)


def test_load_boards_returns_all():
    assert {b.name for b in load_boards()} >= REQUIRED


ECP5 = {"ulx3s-85f": ("LFE5U-85F-6BG381C", "85k", "CABGA381", 6, 83640, 208, 156, 25.0),
        "orangecrab-25f": ("LFE5U-25F-8MG285C", "25k", "CSFBGA285", 8, 24288, 56, 28, 48.0),
        "ecp5-evn": ("LFE5UM5G-85F-8BG381C", "um5g-85k", "CABGA381", 8, 83640, 208, 156, 12.0)}


@pytest.mark.parametrize("name", sorted(ECP5))
def test_ecp5_boards_carry_what_nextpnr_needs(name):
    part, device, package, speed, luts, ebr, mult, mhz = ECP5[name]
    board = load_board(name)
    assert board.is_ecp5 and board.family is Family.ECP5 and board.finn_board is None
    assert board.shell_flow is ShellFlow.NONE and board.yosys_family.value == "ecp5"
    assert board.part == part and board.ecp5.device == device
    assert board.ecp5.package == package and board.ecp5.speed_grade == speed
    assert board.native_resources == {"LUT4": luts, "FF": luts, "EBR": ebr, "MULT18": mult}
    # the common keys every stage and `a2qflow boards` use
    assert board.resources == {"LUT": luts, "FF": luts, "BRAM18": ebr, "URAM": 0, "DSP": mult}
    assert board.clock_mhz == pytest.approx(mhz, abs=0.01)
    assert board.ecp5.clock_pin and board.ecp5.output_pins
    assert board.utilization({"LUT": luts // 2})["LUT"] == pytest.approx(0.5, abs=1e-4)
    assert board.to_dict()["native_resources"]["EBR"] == ebr
    assert set(board.to_dict()) >= {"nextpnr_device", "package", "speed_grade", "pins"}


def test_malformed_ecp5_board_files_are_refused(tmp_path):
    good = yaml.safe_load(load_board.__globals__["BOARDS_DIR"].joinpath("ulx3s-85f.yaml")
                          .read_text())
    xilinx = yaml.safe_load(load_board.__globals__["BOARDS_DIR"].joinpath("zcu104.yaml")
                            .read_text())
    cases = {
        "nopins": ({k: v for k, v in good.items() if k != "pins"}, "missing field"),
        "speed": ({**good, "speed_grade": 9}, "speed grade"),
        "xres": ({**good, "resources": xilinx["resources"]}, "LUT4, FF, EBR, MULT18"),
        "shell": ({**good, "shell_flow": "vivado_zynq"}, "does not go with"),
        "leds": ({**good, "pins": {**good["pins"], "outputs": []}}, "pins.outputs"),
        "mixed": ({**xilinx, "package": "CABGA381"}, "unknown field"),
        "xecp5": ({**xilinx, "yosys_family": "ecp5"}, "does not go with"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(A2QFlowError, match=f"{name}.yaml") as err:
            load_board(name, tmp_path)
        assert message in str(err.value), (name, str(err.value))


def test_every_board_lists_with_the_common_resource_keys():
    for board in load_boards():
        assert set(board.resources) == set(RESOURCE_KEYS) and board.resources["LUT"] > 0
