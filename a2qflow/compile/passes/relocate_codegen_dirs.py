"""Point generated-code paths recorded in HW nodes at the directory they are moved to."""

from __future__ import annotations

from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

CODEGEN_ATTRS = ("code_gen_dir_ipgen", "code_gen_dir_cppsim")


class RelocateCodegenDirs(Transformation):
    """Rewrite ``code_gen_dir_*`` attributes under ``old`` to the same place under ``new``.

    Code is generated in a staging directory and moved into the build directory only when
    the whole compile succeeded; the saved model must name where the code ends up.
    """

    def __init__(self, old: Path, new: Path):
        super().__init__()
        self.old = str(Path(old))
        self.new = str(Path(new))

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
                    inst.set_nodeattr(attr, self.new + str(value)[len(self.old):])
        return model, False
