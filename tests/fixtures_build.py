"""Compiled builds shared by the compile and verify tests (trained by conftest's fixture)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow import compile as a2q_compile

_COMPILED: dict[tuple, Path] = {}


@pytest.fixture(scope="session")
def compiled_build(trained_build, tmp_path_factory) -> Callable[..., Path]:
    """``compiled_build(quant, acc_bits)`` -> a trained, exported and compiled build (shared)."""

    def build(quant: str = "a2q+", acc_bits: int = 12, board: str = "pynq-z1") -> Path:
        key = (quant, acc_bits, board)
        if key not in _COMPILED:
            src = trained_build(quant=quant, acc_bits=acc_bits)
            dst = tmp_path_factory.mktemp(f"compiled_{quant.replace('+', 'p')}_{acc_bits}")
            shutil.copytree(src, dst, dirs_exist_ok=True)
            a2q_compile.run(dst, board)
            _COMPILED[key] = dst
        return _COMPILED[key]

    return build


def mvau_model(weights: np.ndarray, thresholds: np.ndarray | None, idt: str = "UINT4",
               trained_p: int | None = None, quant: str = "a2q") -> ModelWrapper:
    """One generic FINN MVAU (weights ``(channels, K)``) with a2qflow layer metadata."""
    channels, k = weights.shape
    inputs = ["inp", "W"] + (["T"] if thresholds is not None else [])
    n_steps = 0 if thresholds is None else thresholds.shape[1]
    odt = f"UINT{int(np.log2(n_steps + 1))}" if thresholds is not None else "INT32"
    node = helper.make_node(
        "MVAU", inputs, ["out"], name="MVAU_0", domain="finn.custom_op.fpgadataflow",
        backend="fpgadataflow", MW=k, MH=channels, SIMD=1, PE=1, inputDataType=idt,
        weightDataType="INT4", outputDataType=odt, ActVal=0,
        noActivation=0 if thresholds is not None else 1, accDataType="INT32",
    )
    graph = helper.make_graph(
        [node], "mvau",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, channels])],
    )
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("W", weights.T.astype(np.float32))
    model.set_tensor_datatype("inp", DataType[idt])
    model.set_tensor_datatype("W", DataType["INT4"])
    if thresholds is not None:
        model.set_initializer("T", thresholds.astype(np.float32))
        model.set_tensor_datatype("T", DataType["FLOAT32"])
    record = {"name": "fc1", "op": "linear", "quant": quant, "acc_bits": trained_p,
              "input_bits": DataType[idt].bitwidth(), "input_signed": DataType[idt].signed(),
              "weight_bits": 4, "k": k, "channels": channels}
    model.set_metadata_prop("a2qflow.layers", json.dumps([record]))
    return model
