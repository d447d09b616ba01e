"""finn-rtllib copied and patched in one place: every patch applies to the installed finn-plus,
is needed (the original is rejected) and is enough (slang and Verilator accept the copy)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_rtllib
from a2qflow.rtl.finn_rtllib import PATCHES, Patch, apply_patch, copy_sources, rtllib_root
from a2qflow.tools.verilator import Verilator
from a2qflow.tools.yosys import SlangRead, Yosys

# per patched file: the sources to elaborate (finn-rtllib paths), the top, its parameters, and
# which tools reject the original (each must accept the patched copy)
ELABORATIONS = {
    "mvu/add_multi.sv": (("mvu/mvu_pkg.sv", "mvu/add_multi.sv"), "add_multi",
                         {"N": 8, "DEPTH": 2, "ARG_WIDTH": 8}, {"slang", "verilator"}),
    "thresholding/hdl/thresholding.sv": (
        ("axi/hdl/axilite.sv", "thresholding/hdl/thresholding.sv",
         "thresholding/hdl/thresholding_axi.sv"), "thresholding_axi",
        {"N": 15, "WI": 12, "WT": 12, "C": 64, "PE": 4, "USE_AXILITE": 0},
        {"slang", "verilator"}),
    "fifo/hdl/fifo.sv": (("fifo/hdl/fifo.sv",), "fifo", {"DEPTH": 600, "DATA_WIDTH": 8},
                         {"slang", "verilator"}),
    "dwc/hdl/vpc.sv": (("dwc/hdl/vpc.sv", "dwc/hdl/dwc_axi.sv"), "dwc_axi",
                       {"IBITS": 16, "OBITS": 8}, {"slang"}),
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_patch_is_checked_here():
    assert set(ELABORATIONS) == {p.file for p in PATCHES}


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.file)
def test_patch_applies_to_the_installed_finn_plus(patch):
    """The test that fails when a finn-plus upgrade changes a patched file."""
    original = (rtllib_root() / patch.file).read_text()
    patched = apply_patch(patch, original)
    assert patched != original
    for anchor, replacement in patch.edits:
        assert patched.count(anchor) == replacement.count(anchor)


def test_a_patch_whose_anchor_is_gone_names_file_version_and_fix():
    patch = PATCHES[0]
    text = (rtllib_root() / patch.file).read_text().replace(patch.edits[0][0], "")
    with pytest.raises(A2QFlowError) as err:
        apply_patch(patch, text, finn_version="9.9.9")
    assert patch.file in err.value.problem and "finn-plus 9.9.9" in err.value.problem
    assert "occurs 0 times" in err.value.problem
    assert "a2qflow/rtl/finn_rtllib.py" in err.value.fix and "1.6.1" in err.value.fix


def test_an_anchor_found_twice_is_refused_too():
    patch = Patch(file="x.sv", rejected_by="nothing", why="test", edits=(("a", "b"),))
    with pytest.raises(A2QFlowError, match="occurs 2 times"):
        apply_patch(patch, "a a")


def test_copies_are_patched_and_the_installed_files_untouched(tmp_path):
    root = rtllib_root()
    files = [p.file for p in PATCHES] + ["thresholding/hdl/thresholding_axi.sv"]
    before = {f: digest(root / f) for f in files}
    copies = copy_sources(files, tmp_path)
    assert [c.name for c in copies] == [Path(f).name for f in files]
    assert {f: digest(root / f) for f in files} == before
    for patch in PATCHES:
        assert (tmp_path / Path(patch.file).name).read_text() == \
            apply_patch(patch, (root / patch.file).read_text())
    unpatched = "thresholding/hdl/thresholding_axi.sv"
    assert digest(tmp_path / Path(unpatched).name) == before[unpatched]


def test_sources_outside_finn_rtllib_are_refused(tmp_path):
    with pytest.raises(A2QFlowError, match="not inside FINN's RTL library"):
        copy_sources([tmp_path / "mine.sv"], tmp_path / "out")
    with pytest.raises(A2QFlowError, match="not in finn-plus"):
        copy_sources(["thresholding/hdl/no_such.sv"], tmp_path / "out")


def rejections(work: Path, names: list[str], top: str, params: dict[str, int]) -> set[str]:
    """Which of slang (through the Yosys runner) and Verilator refuse to elaborate ``top``."""
    refused = set()
    read = SlangRead(tuple(names), top=top, parameters=tuple(params.items()))
    (work / "synth.ys").write_text(f"{read.command()}\nhierarchy -top {top}\n")
    try:
        Yosys().run_script(work, top, timeout_s=300)
    except A2QFlowError:
        refused.add("slang")
    try:
        Verilator().lint([Path(n) for n in names], top, work, params)
    except A2QFlowError:
        refused.add("verilator")
    return refused


@pytest.mark.parametrize("file", sorted(ELABORATIONS))
def test_each_patch_is_needed_and_enough(file, tmp_path):
    files, top, params, rejected_by = ELABORATIONS[file]
    original, patched = tmp_path / "original", tmp_path / "patched"
    original.mkdir()
    for f in files:
        shutil.copyfile(rtllib_root() / f, original / Path(f).name)
    names = [Path(f).name for f in files]
    assert rejections(original, names, top, params) == rejected_by
    copy_sources(files, patched)
    assert rejections(patched, names, top, params) == set()


def test_rtllib_is_found_in_the_installed_finn_package():
    root = rtllib_root()
    assert root.name == "finn-rtllib" and (root / "thresholding" / "hdl").is_dir()
    assert finn_rtllib.finn_plus_version() == finn_rtllib.PATCHED_FOR
