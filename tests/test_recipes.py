"""Training recipes: schedules, and that every recipe's model passes the post-training check."""

from __future__ import annotations

import json

import pytest

from a2qflow import train
from a2qflow.config import ModelSpec, TrainConfig
from a2qflow.errors import A2QFlowError
from a2qflow.recipes import qat_stages, shifted_spec, width_schedule
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


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [{"progressive": True}, {"distill": True},
                                    {"progressive": True, "distill": True},
                                    {"reproject_every": 5}])
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
