"""Training stage: accumulator targets hold, failures are loud and leave artifacts alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from a2qflow import layout, train
from a2qflow.config import ModelSpec
from a2qflow.errors import A2QFlowError
from a2qflow.models import build_model, weight_layers
from a2qflow.models.ep_init import (
    project_rows_onto_integer_budget,
    project_rows_onto_l1_ball,
)
from a2qflow.models.inspect import stored_accumulator_bits
from tests.conftest import quick_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("quant", ["a2q", "a2q+"])
def test_every_constrained_layer_is_within_its_target(trained_build, quant):
    build = trained_build(quant=quant, acc_bits=12, exported=False)
    result = json.loads((build / "train.json").read_text())
    constrained = [r for r in result["layers"] if r["acc_bits"] is not None]
    assert [r["name"] for r in constrained] == ["features.4", "features.7"]
    for r in constrained:
        assert r["exact_bits"] <= r["acc_bits"] == 12
        assert r["max_l1"] <= r["l1_limit"]
    assert result["quant_test_acc"] > 0.85
    assert result["float_test_acc"] > 0.85
    assert result["ep_init_layers"] == 2


def test_infeasible_width_is_refused_before_training(tmp_path):
    # 4-bit unsigned inputs: the A2Q limit at P=5 is 15/16 < 1, so every weight would be zero
    with pytest.raises(A2QFlowError, match=r"(?s)P=5 is infeasible.*use --acc-bits >= 6"):
        train.run(ModelSpec(quant="a2q", acc_bits=5), quick_config(), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_infeasible_first_layer_width_is_refused(tmp_path):
    # the first layer sees 8-bit pixels: P=9 gives (2^8 - 1) / 2^8 < 1
    with pytest.raises(A2QFlowError, match="layer 0"):
        train.run(ModelSpec(quant="a2q", acc_bits=12, first_acc_bits=9), quick_config(),
                  tmp_path)


def test_collapsed_layer_is_an_error_and_keeps_previous_artifacts(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"previous good checkpoint")
    # A2Q at P=6 with 4-bit inputs allows ||q||_1 <= 1.94; without EP-init the clamped norm
    # spreads over 64 weights and round-to-zero empties every channel
    expected = r"(?s)collapsed.*features.4 \(P=6\).*larger --acc-bits"
    with pytest.raises(A2QFlowError, match=expected):
        train.run(ModelSpec(quant="a2q", acc_bits=6),
                  quick_config(qat_epochs=0, ep_init=False), tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"previous good checkpoint"
    assert not (tmp_path / "train.json").exists()


def test_warm_start_from_wider_checkpoint_cannot_smuggle_its_width(trained_build, tmp_path):
    wide = trained_build(quant="a2q", acc_bits=16, exported=False)
    result = train.run(ModelSpec(quant="a2q", acc_bits=10), quick_config(), tmp_path,
                       progress=False, init_from=wide / "checkpoint.pt")
    trained = layout.load_checkpoint(tmp_path / "checkpoint.pt")
    for name, layer in weight_layers(trained.model)[1:3]:
        assert stored_accumulator_bits(layer) == 10, name
    for r in result["layers"][1:3]:
        assert r["acc_bits"] == 10 and r["exact_bits"] <= 10


def test_warm_start_reuses_the_float_accuracy_only_for_the_same_test_set(trained_build,
                                                                          tmp_path):
    src = trained_build(quant="a2q", acc_bits=16, exported=False)
    measured = json.loads((src / "train.json").read_text())["float_test_acc"]
    again = train.run(ModelSpec(quant="a2q", acc_bits=16), quick_config(qat_epochs=1),
                      tmp_path / "same", progress=False, init_from=src / "checkpoint.pt")
    assert again["float_test_acc_from"] == "init_from checkpoint"
    assert again["float_test_acc"] == measured
    payload = torch.load(src / "checkpoint.pt", weights_only=True)
    payload["float_eval"]["test_set"] = "digits:360:measured-on-other-images"
    torch.save(payload, tmp_path / "other.pt")
    other = train.run(ModelSpec(quant="a2q", acc_bits=16), quick_config(qat_epochs=1),
                      tmp_path / "other", progress=False, init_from=tmp_path / "other.pt")
    assert other["float_test_acc_from"] == "measured here"
    assert other["float_test_acc"] == pytest.approx(measured)  # the same model, measured again


def test_checkpoint_whose_stored_width_disagrees_with_its_spec_is_refused(trained_build,
                                                                             tmp_path):
    src = trained_build(quant="a2q", acc_bits=16, exported=False) / "checkpoint.pt"
    payload = torch.load(src, weights_only=True)
    payload["spec"]["acc_bits"] = 10  # claims P=10, state dict still enforces P=16
    torch.save(payload, tmp_path / "checkpoint.pt")
    with pytest.raises(A2QFlowError, match="enforces P=16 but the model spec asks for P=10"):
        layout.load_checkpoint(tmp_path / "checkpoint.pt")


def test_corrupt_checkpoint_gets_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint")
    with pytest.raises(A2QFlowError, match="corrupt") as info:
        layout.load_checkpoint(bad)
    assert "a2qflow train" in info.value.fix


def test_missing_checkpoint_names_the_stage_to_run(tmp_path):
    with pytest.raises(A2QFlowError, match="not found") as info:
        layout.load_checkpoint(tmp_path / "checkpoint.pt")
    assert "a2qflow train" in info.value.fix


def test_training_is_reproducible(tmp_path):
    cfg = quick_config(float_epochs=2, qat_epochs=1)
    spec = ModelSpec(quant="a2q+", acc_bits=12, hidden=16)
    a = train.run(spec, cfg, tmp_path / "a", progress=False)
    b = train.run(spec, cfg, tmp_path / "b", progress=False)
    assert a["quant_test_acc"] == b["quant_test_acc"]
    sa = layout.load_checkpoint(tmp_path / "a" / "checkpoint.pt").model.state_dict()
    sb = layout.load_checkpoint(tmp_path / "b" / "checkpoint.pt").model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_l1_projection_matches_brute_force_optimum():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.normal(size=(6, 9)))
    radius = torch.tensor([0.5, 1.0, 2.0, 3.0, 100.0, 0.1], dtype=torch.float64)
    p = project_rows_onto_l1_ball(w, radius)
    assert torch.all(p.abs().sum(1) <= radius + 1e-9)
    assert torch.equal(p[4], w[4])  # already inside: unchanged
    # KKT: the projection is soft-thresholding by one theta per row
    for row, prow, r in zip(w, p, radius, strict=True):
        if row.abs().sum() > r:
            theta = (row.abs() - prow.abs())[prow != 0]
            assert torch.allclose(theta, theta[0].expand_as(theta))
            assert torch.isclose(prow.abs().sum(), r)


def test_integer_budget_projection_spends_the_budget_that_truncation_wastes():
    # a 2304-input row (CNV's widest conv) with the A2Q+ budget of P=10 and 4-bit inputs
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.normal(size=(4, 2304)))
    scale = w.abs().max(dim=1).values / 7
    budget = torch.full((4,), 68.1, dtype=torch.float64)

    def truncated(p: torch.Tensor) -> torch.Tensor:  # A2Q's quantizers round toward zero
        return torch.trunc(p / scale.reshape(-1, 1))

    euclid = truncated(project_rows_onto_l1_ball(w, scale * budget))
    q = truncated(project_rows_onto_integer_budget(w, scale, budget))
    # the Euclidean projection leaves half the budget below one step, truncated away
    assert torch.all(euclid.abs().sum(1) <= budget / 2)
    assert torch.all(q.abs().sum(1) <= budget) and torch.all(q.abs().sum(1) >= 0.65 * budget)
    p = project_rows_onto_integer_budget(w, scale, budget)
    assert torch.all(p.abs().sum(1) <= scale * budget + 1e-9)  # inside the L1 ball the proof uses
    kept = q != 0  # survivors sit half a step above their integer; the largest weights survive
    assert torch.allclose((p / scale.reshape(-1, 1)).abs()[kept], q.abs()[kept] + 0.5)
    assert torch.all(kept.gather(1, w.abs().argmax(1, keepdim=True)))
    inside = torch.full((4,), 1e6, dtype=torch.float64)
    assert torch.equal(project_rows_onto_integer_budget(w, scale, inside), w)


def test_float_and_quantized_models_share_parameter_names():
    f = build_model(ModelSpec(quant="float")).state_dict()
    q = build_model(ModelSpec(quant="a2q+")).state_dict()
    assert set(f) <= set(q)


def test_dead_channels_are_reported_not_hidden(tmp_path):
    # the first layer (8-bit pixels) at P=11 allows ||q||_1 <= 8: most channels empty out
    result = train.run(ModelSpec(quant="a2q", acc_bits=10, first_acc_bits=11),
                       quick_config(qat_epochs=1), tmp_path, progress=False)
    first = result["layers"][0]
    assert 0 < first["dead_channels"] < first["channels"]
    assert [w for w in result["warnings"] if w.startswith("features.1: ")]
    assert all(layer["dead_channels"] == 0 for layer in result["layers"][1:])


def test_training_in_a_log_prints_one_line_per_epoch(capsys):
    """Without a terminal (nohup, CI, Dask workers) the bar is off, so progress goes per epoch."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    train.fit(model, x, y, epochs=3, lr=1e-2, batch_size=8, generator=torch.Generator(),
              desc="float", progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("float: epoch")]
    assert [ln.split()[2] for ln in lines] == ["1/3", "2/3", "3/3"]
    train.fit(model, x, y, epochs=2, lr=1e-2, batch_size=8, generator=torch.Generator(),
              desc="quiet", progress=False)
    assert "quiet" not in capsys.readouterr().err
