"""CNV (FINN's CIFAR-10 topology) in every form, and a small one through export, compile, verify."""

from __future__ import annotations

import json

import pytest
import torch

from a2qflow import compile as compile_stage
from a2qflow import export, train, verify
from a2qflow.config import ModelSpec
from a2qflow.models import build_model, weight_layers
from a2qflow.models.inspect import layer_reports
from tests.conftest import SHARED_DATA, quick_config

CIFAR = SHARED_DATA / "cifar10"


@pytest.mark.parametrize("quant", ["float", "baseline", "a2q", "a2q+"])
def test_cnv_has_finns_topology_in_every_form(quant):
    spec = ModelSpec(arch="cnv", quant=quant, acc_bits=14, hidden=8)
    model = build_model(spec)
    layers = weight_layers(model)
    assert len(layers) == 9  # 6 conv + 3 fully connected
    assert [type(m).__name__.replace("Quant", "") for _, m in layers] == ["Conv2d"] * 6 + [
        "Linear"] * 3
    out = model(torch.rand(2, 3, 32, 32))
    assert tuple(torch.as_tensor(out).shape) == (2, 10)
    if quant in ("a2q", "a2q+"):
        reports = layer_reports(model, spec, torch.rand(2, 3, 32, 32))
        assert [r.acc_bits for r in reports] == [None] + [14] * 7 + [None]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not CIFAR.is_dir(), reason=f"CIFAR-10 subset not found at {CIFAR}")
def test_small_cnv_trains_exports_compiles_and_verifies(tmp_path):
    spec = ModelSpec(arch="cnv", quant="a2q+", acc_bits=14, hidden=8)
    cfg = quick_config(dataset="cifar10", data_dir=str(CIFAR), max_train_samples=512,
                       float_epochs=2, qat_epochs=1)
    result = train.run(spec, cfg, tmp_path, progress=False)
    assert all(r["exact_bits"] <= 14 for r in result["layers"][1:8])
    exp = export.run(tmp_path, max_samples=20)
    assert exp["argmax_agreement"] == 1.0 and exp["max_abs_diff"] <= exp["tolerance"]
    compile_stage.run(tmp_path, board="zcu104")
    cert = json.loads((tmp_path / "certificate.json").read_text())
    assert cert["all_proven"] and len(cert["layers"]) == 9
    assert verify.run(tmp_path, max_samples=20)["ok"]
