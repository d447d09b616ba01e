"""`a2qflow import`: QONNX models built with brevitas alone, certified and verified by a2qflow.

The foreign models here never touch a2qflow's own model code: brevitas layers, random weights,
brevitas's ``export_qonnx``. The certificate's exact widths are checked against a
recomputation straight from the ONNX initializers (numpy only, not ``a2qflow.bounds``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import onnx
import pytest
import torch
from brevitas.export import export_qonnx
from brevitas.quant import (
    Int8AccumulatorAwareZeroCenterWeightQuant,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from torch import nn

from a2qflow import compile as compile_stage
from a2qflow import layout, qonnx_import, rtl, verify
from a2qflow.errors import A2QFlowError


class ForeignMLP(nn.Module):
    """64-16-16-10 with an 8-bit unsigned input; per-channel, A2Q+ and per-tensor weights."""

    def __init__(self, a2q_plus: bool):
        super().__init__()
        hidden = ({"weight_quant": Int8AccumulatorAwareZeroCenterWeightQuant,
                   "weight_accumulator_bit_width": 12} if a2q_plus
                  else {"weight_quant": Int8WeightPerChannelFloat})
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=8,
                                     return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(64, 16, bias=False, weight_bit_width=4,
                                   weight_quant=Int8WeightPerChannelFloat)
        self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(16, 16, bias=False, weight_bit_width=4, **hidden)
        self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc3 = qnn.QuantLinear(16, 10, bias=False, weight_bit_width=4,
                                   weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x):
        x = self.inp(x.flatten(1))
        return self.fc3(self.r2(self.fc2(self.r1(self.fc1(x)))))


class ForeignConv(nn.Module):
    """1x8x8 input, two 3x3 convs and a classifier."""

    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=8,
                                     return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 4, 3, bias=False, weight_bit_width=4,
                                     weight_quant=Int8WeightPerChannelFloat)
        self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.conv2 = qnn.QuantConv2d(4, 4, 3, bias=False, weight_bit_width=4,
                                     weight_quant=Int8WeightPerChannelFloat)
        self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(4 * 4 * 4, 10, bias=False, weight_bit_width=4,
                                  weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x):
        x = self.r2(self.conv2(self.r1(self.conv1(self.inp(x)))))
        return self.fc(x.flatten(1))


def export_foreign(model: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    torch.manual_seed(0)
    model.eval()
    x = torch.rand(1, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(x)
        export_qonnx(model, input_t=x, export_path=str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foreign")
    torch.manual_seed(1)
    a2qp = ForeignMLP(a2q_plus=True)
    torch.manual_seed(1)
    plain = ForeignMLP(a2q_plus=False)
    torch.manual_seed(1)
    conv = ForeignConv()
    return {"a2q+": export_foreign(a2qp, (64,), d / "mlp_a2qp.onnx"),
            "plain": export_foreign(plain, (64,), d / "mlp_plain.onnx"),
            "conv": export_foreign(conv, (1, 8, 8), d / "conv.onnx")}


def independent_exact_bits(path: Path) -> list[int]:
    """From the raw file: every weight Quant's integers, then the accumulator range against the
    layer's input quantizer, with numpy only."""
    model = onnx.load(str(path))
    init = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    consts = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
              for n in model.graph.node if n.op_type == "Constant"}
    value = {**init, **consts}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Conv"):
            continue
        wq = producer[node.input[1]]
        while wq.op_type != "Quant":
            wq = producer[wq.input[0]]
        w, s, z, b = (value[i] for i in wq.input)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in wq.attribute}
        q = np.round(w / s + z)
        lo_w = -(2 ** (b - 1)) + (1 if attrs.get("narrow") else 0)
        q = np.clip(q, lo_w, 2 ** (b - 1) - 1).reshape(q.shape[0], -1).astype(np.int64)
        aq = producer[node.input[0]]
        while aq.op_type != "Quant":
            aq = producer[aq.input[0]]
        a_bits = int(value[aq.input[3]])
        a_signed = bool({a.name: onnx.helper.get_attribute_value(a)
                         for a in aq.attribute}.get("signed", 1))
        x_lo, x_hi = (-(2 ** (a_bits - 1)), 2 ** (a_bits - 1) - 1) if a_signed \
            else (0, 2 ** a_bits - 1)
        acc_hi = (np.where(q > 0, q, 0).sum(1) * x_hi + np.where(q < 0, q, 0).sum(1) * x_lo)
        acc_lo = (np.where(q > 0, q, 0).sum(1) * x_lo + np.where(q < 0, q, 0).sum(1) * x_hi)
        hi, lo = int(acc_hi.max()), int(acc_lo.min())
        bits = 1
        while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
            bits += 1
        out.append(bits)
    return out


@pytest.mark.slow
def test_an_a2q_plus_mlp_from_brevitas_alone_is_certified_verified_and_simulated(foreign,
                                                                                 tmp_path):
    build = tmp_path / "b"
    result = qonnx_import.run(foreign["a2q+"], build, trained_p={"fc2": 12})
    assert [r["name"] for r in result["layers"]] == ["fc1", "fc2", "fc3"]
    assert result["samples"]["kind"] == "generated"
    assert result["source"]["producer"]["name"] == "pytorch"
    compile_stage.run(build, "pynq-z2", target_fps=400_000)
    cert = json.loads((build / layout.CERTIFICATE).read_text())
    assert [e["exact_bits"] for e in cert["layers"]] == independent_exact_bits(foreign["a2q+"])
    assert cert["layers"][1]["trained_p"] == 12 and cert["layers"][1]["exact_bits"] <= 12
    assert cert["layers"][0]["training_target"].startswith("none checked")
    assert cert["all_proven"]
    checked = verify.run(build)
    assert checked["ok"] and checked["chain"]["brevitas_vs_finn"] is None
    assert checked["chain"]["qonnx_vs_finn"]["mismatches"] == 0
    assert "import.json" in checked["inputs"]
    sim = rtl.run(build, max_images=4)
    assert sim["ok"] and all(lay["worst_case"]["negative_control"]["detected"]
                             for lay in sim["layers"])


@pytest.mark.slow
def test_a_conv_net_and_per_tensor_scales_are_certified_exactly(foreign, tmp_path):
    build = tmp_path / "b"
    samples = tmp_path / "s.npz"
    rng = np.random.default_rng(0)
    np.savez(samples, x=rng.random((8, 1, 8, 8), dtype=np.float32),
             y=rng.integers(0, 10, 8))
    qonnx_import.run(foreign["conv"], build, samples=samples)
    compile_stage.run(build, "pynq-z2", target_fps=10_000)
    cert = json.loads((build / layout.CERTIFICATE).read_text())
    assert [e["exact_bits"] for e in cert["layers"]] == independent_exact_bits(foreign["conv"])
    checked = verify.run(build)
    assert checked["ok"] and "accuracy" in checked["chain"]


@pytest.mark.slow
def test_a_forced_width_below_a_plain_layers_need_is_refused(foreign, tmp_path):
    build = tmp_path / "b"
    qonnx_import.run(foreign["plain"], build)
    with pytest.raises(A2QFlowError, match=r"--acc-bits 12 would overflow: layer fc1 .*needs"):
        compile_stage.run(build, "pynq-z2", target_fps=400_000, acc_bits=12)
    assert not (build / layout.CERTIFICATE).exists()


def test_a_float_onnx_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "float.onnx"
    torch.onnx.export(nn.Sequential(nn.Linear(4, 2)), torch.rand(1, 4), str(path), dynamo=False)
    with pytest.raises(A2QFlowError, match="float ONNX model: it has no QONNX Quant nodes"):
        qonnx_import.run(path, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_truncated_file_is_refused(foreign, tmp_path):
    path = tmp_path / "cut.onnx"
    path.write_bytes(foreign["a2q+"].read_bytes()[:500])
    with pytest.raises(A2QFlowError, match="is not a readable ONNX model"):
        qonnx_import.run(path, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_an_op_finn_cannot_map_is_named(foreign, tmp_path):
    model = onnx.load(str(foreign["a2q+"]))
    last = model.graph.output[0].name
    model.graph.node.append(onnx.helper.make_node("Softmax", [last], ["probs"], name="head"))
    model.graph.output[0].name = "probs"
    path = tmp_path / "softmax.onnx"
    onnx.save(model, str(path))
    with pytest.raises(A2QFlowError, match=r"FINN cannot map head \(Softmax\)"):
        qonnx_import.run(path, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_trained_p_must_name_a_layer_and_hold(foreign, tmp_path):
    with pytest.raises(A2QFlowError, match="names unknown layers: fc9"):
        qonnx_import.run(foreign["a2q+"], tmp_path / "b", trained_p={"fc9": 12})
    with pytest.raises(A2QFlowError, match=r"layer fc1 .*need \d+ accumulator bits, more than"):
        qonnx_import.run(foreign["a2q+"], tmp_path / "b", trained_p={"fc1": 8})
    with pytest.raises(A2QFlowError, match="is not LAYER=P"):
        qonnx_import.parse_trained_p(["fc2"])
