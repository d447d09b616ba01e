"""FINN's InferThresholdingLayer, restricted to MultiThresholds with integer inputs."""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

HOST_OP = "HostMultiThreshold"  # placeholder op_type while FINN's pass runs


class InferIntegerThresholdingLayer(Transformation):
    """Turn integer-input MultiThresholds into HW Thresholding layers; leave float-input ones.

    A float-input MultiThreshold is the network's input quantizer (pixels in [0, 1] to 8-bit
    codes). finn-plus would make it a float comparator layer (its own estimate: 100,000 LUTs for
    an MNIST TFC, 20x the rest of the network) for what is an identity on 8-bit pixel data; it
    belongs on the host, outside the dataflow partition, as in FINN's classic flow. The node is
    hidden from FINN's pass under a placeholder op type and restored unchanged afterwards.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.fpgadataflow.convert_to_hw.thresholding import (
            InferThresholdingLayer,
        )

        hidden = [n for n in model.graph.node if n.op_type == "MultiThreshold"
                  and not model.get_tensor_datatype(n.input[0]).is_integer()]
        for node in hidden:
            node.op_type = HOST_OP
        try:
            model, changed = InferThresholdingLayer().apply(model)
        finally:
            for node in model.graph.node:
                if node.op_type == HOST_OP:
                    node.op_type = "MultiThreshold"
        return model, changed
