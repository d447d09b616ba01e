"""InferIntegerThresholdingLayer: integer-input thresholds become HW layers, the float one stays."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.util.basic import qonnx_make_model

from a2qflow.compile.passes import InferIntegerThresholdingLayer


def two_threshold_model() -> ModelWrapper:
    """float x -> MultiThreshold (input quantizer) -> UINT2 y -> MultiThreshold -> UINT2 z."""
    vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])  # noqa: E731
    nodes = [
        helper.make_node("MultiThreshold", ["x", "t0"], ["y"], domain="qonnx.custom_op.general",
                         out_dtype="UINT2"),
        helper.make_node("MultiThreshold", ["y", "t1"], ["z"], domain="qonnx.custom_op.general",
                         out_dtype="UINT2"),
    ]
    graph = helper.make_graph(nodes, "g", [vi("x")], [vi("z")], value_info=[vi("y")])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("t0", np.array([[0.25, 0.5, 0.75]] * 4, dtype=np.float32))
    model.set_initializer("t1", np.array([[1, 2, 3]] * 4, dtype=np.float32))
    model.set_tensor_datatype("x", DataType["FLOAT32"])
    model.set_tensor_datatype("y", DataType["UINT2"])
    model.set_tensor_datatype("t1", DataType["UINT2"])
    model.set_tensor_datatype("z", DataType["UINT2"])
    return model


def test_only_the_integer_input_threshold_becomes_a_hw_layer():
    model = two_threshold_model()
    x = np.array([[0.1, 0.3, 0.6, 0.9]], dtype=np.float32)
    before = execute_onnx(model, {"x": x})["z"]
    model = model.transform(InferIntegerThresholdingLayer())
    ops = [(n.op_type, n.domain) for n in model.graph.node]
    assert ops[0] == ("MultiThreshold", "qonnx.custom_op.general")
    assert ops[1][0] == "Thresholding" and ops[1][1].startswith("finn.custom_op.fpgadataflow")
    np.testing.assert_array_equal(execute_onnx(model, {"x": x})["z"], before)
