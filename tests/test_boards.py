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
