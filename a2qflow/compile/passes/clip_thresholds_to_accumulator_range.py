"""Round and clip MVAU/VVAU thresholds to the reachable accumulator range, and type them."""

from __future__ import annotations

import json

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from a2qflow import bounds
from a2qflow.errors import A2QFlowError
from a2qflow.graph import CERTIFIED_KEY, accumulator_extremes, hw_matmul_nodes, read_certified


class ClipThresholdsToAccumulatorRange(Transformation):
    """Make each fused threshold memory as narrow as the certified accumulator.

    finn-hlslib's MVAU accumulates in the threshold type (``decltype(activation.init())``),
    so the threshold datatype *is* the accumulator register. FINN's RoundAndClipThresholds
    clips to the accumulator datatype's range plus one, which always costs one more bit;
    clipping per channel to the reachable range ``[lo_c, hi_c + 1]`` keeps every comparison
    ``acc >= T`` unchanged for all reachable ``acc`` and usually fits the certified width.
    The register width used is recorded in the ``a2qflow.certified`` metadata.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        certified = read_certified(model)
        nodes = hw_matmul_nodes(model)
        if len(certified) != len(nodes):
            raise A2QFlowError("accumulators were not certified before clipping thresholds",
                               "run SetCertifiedAccumulatorWidth first")
        for node, cert in zip(nodes, certified, strict=True):
            inst = getCustomOp(node)
            if inst.get_nodeattr("noActivation") or len(node.input) < 3:
                continue
            thresholds = model.get_initializer(node.input[2])
            rng = accumulator_extremes(model, node)
            lo, hi = rng.lo[:, None], rng.hi[:, None]
            if thresholds.shape[0] == 1:  # one threshold row broadcast to every channel
                lo, hi = rng.lo.min(), rng.hi.max()
            clipped = np.clip(np.ceil(thresholds.astype(np.float64)), lo, hi + 1)
            acc_bits = DataType[inst.get_nodeattr("accDataType")].bitwidth()
            bits = max(acc_bits, bounds.signed_bits_for_range(int(clipped.min()),
                                                              int(clipped.max())))
            model.set_initializer(node.input[2], clipped.astype(np.float32))
            model.set_tensor_datatype(node.input[2], DataType[f"INT{bits}"])
            cert["register"] = f"INT{bits}"
        model.set_metadata_prop(CERTIFIED_KEY, json.dumps(certified))
        return model, False
