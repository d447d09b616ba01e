"""Point generated-code paths recorded in HW nodes, and inside their generated files, at the
directory the code is moved to."""

from __future__ import annotations

import re
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

CODEGEN_ATTRS = ("code_gen_dir_ipgen", "code_gen_dir_cppsim")


class RelocateCodegenDirs(Transformation):
    """Rewrite ``code_gen_dir_*`` attributes under ``old`` to the same place under ``new``, and
    the ``old`` paths FINN wrote into the text files of those directories (memstream wrappers'
    ``INIT_FILE``, HLS Tcl's ``config_hwsrcdir``).

    Code is generated in a staging directory and moved into the build directory only when
    the whole compile succeeded; the saved model and the files must name where the code ends
    up. Run it before the move: the files are read where the attributes still point.
    """

    def __init__(self, old: Path, new: Path):
        super().__init__()
        self.old = str(Path(old))
        self.new = str(Path(new))
        # ``old`` as a whole path component: not ``old`` followed by more of a name
        self._old_path = re.compile(re.escape(self.old) + r"(?![\w.-])")

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if not node.domain.startswith("finn.custom_op.fpgadataflow"):
                continue
            inst = getCustomOp(node)
            for attr in CODEGEN_ATTRS:
                try:
                    value = inst.get_nodeattr(attr)
                except AttributeError:
                    continue
                if value and str(value).startswith(self.old):
                    self._rewrite_files(Path(value))
                    inst.set_nodeattr(attr, self.new + str(value)[len(self.old):])
        return model, False

    def _rewrite_files(self, directory: Path) -> None:
        if not directory.is_dir():
            return
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            text = text_contents(path)
            if text is not None and self.old in text:
                path.write_bytes(self._old_path.sub(self.new, text).encode("utf-8"))


def text_contents(path: Path) -> str | None:
    """The file's contents if it is UTF-8 text (``.npy`` arrays and other binaries: None)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
