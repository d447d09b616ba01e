"""Training recipes: schedules, and that every recipe's model passes the post-training check."""

from __future__ import annotations

import json

import pytest
import torch

from a2qflow import train
from a2qflow.config import ModelSpec, TrainConfig
from a2qflow.errors import A2QFlowError
from a2qflow.models import build_model
from a2qflow.recipes import (
    qat_stages,
    reprojection,
    reprojection_until,
    shifted_spec,
    width_schedule,
)
from tests.conftest import quick_config


def test_width_schedule_steps_down_to_the_target():
    assert width_schedule(10, None, 2) == [16, 14, 12, 10]
    assert width_schedule(10, 15, 2) == [15, 13, 11, 10]
    assert width_schedule(30, None, 4) == [32, 30]
    assert width_schedule(10, 10, 2) == [10]


def test_qat_stages_split_the_epoch_budget_and_keep_the_target_last():
    spec = ModelSpec(quant="a2q+", acc_bits=10, first_acc_bits=12)
    stages = qat_stages(spec, TrainConfig(progressive=True, qat_epochs=10))
    assert [s.acc_bits for s, _ in stages] == [16, 14, 12, 10]
    assert [s.first_acc_bits for s, _ in stages] == [18, 16, 14, 12]
    assert sum(e for _, e in stages) == 10 and stages[-1][0] == spec


def test_standard_recipe_is_one_stage():
    spec = ModelSpec(quant="a2q", acc_bits=10)
    assert qat_stages(spec, TrainConfig(qat_epochs=7)) == [(spec, 7)]


def test_shifted_spec_caps_at_32_bits():
    assert shifted_spec(ModelSpec(quant="a2q", acc_bits=30), 6).acc_bits == 32


def test_bad_recipe_parameters_are_refused():
    with pytest.raises(A2QFlowError, match="distill_alpha"):
        TrainConfig(distill_alpha=1.5)
    with pytest.raises(A2QFlowError, match="progressive_step"):
        TrainConfig(progressive_step=0)
    with pytest.raises(A2QFlowError, match="reproject_every"):
        TrainConfig(reproject_every=-1)
    with pytest.raises(A2QFlowError, match="reproject_settle_epochs"):
        TrainConfig(reproject_settle_epochs=-1)


def test_reprojection_stops_before_the_settle_epochs():
    assert reprojection_until(epochs=8, steps_per_epoch=235, settle_epochs=0) == 8 * 235
    assert reprojection_until(epochs=8, steps_per_epoch=235, settle_epochs=1) == 7 * 235
    # at least one epoch re-projects, however many are asked to settle
    assert reprojection_until(epochs=2, steps_per_epoch=10, settle_epochs=5) == 10
    assert reprojection_until(epochs=0, steps_per_epoch=10, settle_epochs=1) == 0


def test_reprojection_hook_moves_weights_only_on_its_steps():
    model = build_model(ModelSpec(quant="a2q+", acc_bits=9, hidden=16, in_features=64,
                                  num_classes=10))
    sample = torch.rand(8, 64)
    hook = reprojection(model, sample, zero_centre=True, every=5, until=10)

    def moved(step: int) -> bool:
        before = [t.detach().clone() for t in model.parameters()]
        hook(step)
        return any(not torch.equal(a, b) for a, b in zip(before, model.parameters(),
                                                          strict=True))

    # a fresh model's rows spend too little of the budget: re-projection changes them
    assert not moved(4)
    assert moved(5)
    assert not moved(15)  # past `until`: the settle phase keeps the trained weights


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [{"progressive": True}, {"distill": True},
                                    {"progressive": True, "distill": True},
                                    {"reproject_every": 5, "reproject_settle_epochs": 1}])
def test_every_recipe_passes_the_post_training_width_check(tmp_path, recipe):
    cfg = quick_config(float_epochs=4, qat_epochs=4, **recipe)
    result = train.run(ModelSpec(quant="a2q+", acc_bits=9, hidden=32), cfg, tmp_path,
                       progress=False)
    assert result["recipe"] == TrainConfig(**recipe).recipe_name
    for layer in result["layers"][1:3]:
        assert layer["acc_bits"] == 9 and layer["exact_bits"] <= 9
    stages = result["history"]["qat"]
    if recipe.get("progressive"):
        assert [s["acc_bits"] for s in stages] == [15, 13, 11, 9]
        # each stage's weights prove its own width, not a wider one carried over
        for s in stages:
            assert max(s["exact_bits"][1:3]) <= s["acc_bits"]
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["recipe"] == result["recipe"]
