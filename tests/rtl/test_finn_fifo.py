"""FINN's own RTL FIFO (StreamingFIFO_rtl, the patched fifo.sv): in order and bit-exact through
random stalls in Verilator, and the memory Yosys maps it to follows its ram_style."""

from __future__ import annotations

import numpy as np
import pytest

from a2qflow.boards import load_board
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_fifo, finn_rtl
from a2qflow.tools.yosys import Yosys

pytestmark = pytest.mark.slow
BOARD = load_board("pynq-z1")


@pytest.mark.parametrize(("depth", "ram_style", "memory"), [
    (64, "distributed", "LUT_memory"),  # LUTRAM
    (600, "block", "BRAM18"),  # BRAM: 200 vectors x 4 beats pass through it
])
def test_fifo_is_bit_exact_under_stalls_and_maps_to_its_ram_style(depth, ram_style, memory,
                                                                   tmp_path):
    model = finn_fifo.fifo_model(channels=8, pe=2, datatype="INT4", depth=depth,
                                 ram_style=ram_style)
    rtl = finn_fifo.generate(model, tmp_path / "src", BOARD.part, BOARD.clock_ns)
    x = np.random.default_rng(depth).integers(-8, 8, size=(200, 8))

    sim = finn_rtl.simulate_layer(rtl, x, x, tmp_path / "sim")
    yosys = Yosys()
    result = finn_rtl.synthesize(rtl, tmp_path / "synth", yosys, "xc7", timeout_s=600)

    assert sim["compared"] == x.size and sim["mismatches"] == 0, sim["first_mismatch"]
    assert result["resources"][memory] > 0 and result["resources"]["LUT"] > 0
    assert result["label"] == f"{yosys.label} estimate, FINN RTL FIFO"


def test_a_pe_that_does_not_divide_the_channels_is_refused():
    with pytest.raises(A2QFlowError, match="does not divide"):
        finn_fifo.fifo_model(channels=10, pe=4, datatype="INT4", depth=8)
