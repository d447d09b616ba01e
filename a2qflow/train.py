"""Stage `train`: float pre-training, then QAT warm-started from it (EP-init for A2Q/A2Q+).

Writes ``checkpoint.pt`` and ``train.json`` (and ``samples.npz``, the test inputs and torch
outputs that later stages check against). Nothing is written unless every constrained layer
is non-empty and its exact accumulator width, computed from the trained integer weights, is
within its target P.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brevitas
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

import a2qflow
from a2qflow import bounds, layout, ptq
from a2qflow.artifacts import write_json
from a2qflow.config import ModelSpec, QuantMethod, TrainConfig
from a2qflow.data import Dataset, load_dataset
from a2qflow.errors import A2QFlowError
from a2qflow.layout import load_checkpoint, save_checkpoint, save_samples
from a2qflow.models import build_model, weight_layers
from a2qflow.models.ep_init import apply_ep_init
from a2qflow.models.inspect import (
    ACC_BITS_KEY,
    LayerReport,
    check_stored_widths,
    collapsed_layers,
    dead_channel_warnings,
    l1_limit,
    layer_reports,
)
from a2qflow.models.layers import layer_acc_bits
from a2qflow.recipes import (
    LossFn,
    cross_entropy,
    distillation,
    qat_stages,
    reprojection,
    reprojection_until,
)

N_SAMPLES = 100


# --- checks before and after training ------------------------------------------------------


def expected_input_format(spec: ModelSpec, index: int) -> tuple[int, bool]:
    """Bits and sign of the integers layer ``index`` receives (input quant or a ReLU)."""
    return (spec.input_bits, False) if index == 0 else (spec.act_bits, False)


def layer_count(spec: ModelSpec) -> int:
    return len(weight_layers(build_model(dataclasses.replace(spec, quant=QuantMethod.FLOAT))))


def check_feasible(spec: ModelSpec) -> None:
    """Refuse, before any training, a P whose L1 limit forces every weight of a layer to zero."""
    count = layer_count(spec)
    for index in range(count):
        p = layer_acc_bits(spec, index, count)
        if p is None:
            continue
        n, signed = expected_input_format(spec, index)
        limit = l1_limit(spec.quant, p, n, signed)
        if not bounds.admits_nonzero_weights(limit):
            smallest = next((q for q in range(2, bounds.MAX_ACC_BITS + 1)
                             if bounds.admits_nonzero_weights(l1_limit(spec.quant, q, n, signed))),
                            None)
            flag = width_flag(spec, index, count)
            fix = (f"use {flag} >= {smallest} for this layer (or fewer input/activation bits)"
                   if smallest is not None else "use fewer input/activation bits")
            raise A2QFlowError(
                f"accumulator width P={p} is infeasible for layer {index} ({n}-bit "
                f"{'signed' if signed else 'unsigned'} inputs): the {spec.quant.value} bound "
                f"allows an L1 norm of {limit:.3g}, so every integer weight would be zero", fix)


def width_flag(spec: ModelSpec, index: int, count: int) -> str:
    """The option that sets layer ``index``'s P (for messages that tell the user what to change)."""
    if index == 0 and spec.first_acc_bits is not None:
        return "--first-acc-bits"
    if index == count - 1 and spec.last_acc_bits is not None:
        return "--last-acc-bits"
    return "--acc-bits"


def check_trained(reports: list[LayerReport], post_training: bool = False) -> None:
    """A collapsed layer or a width above target must never pass silently; the fix depends on
    whether QAT or AXE (post-training) chose the integers."""
    collapsed = collapsed_layers(reports)
    if collapsed:
        names = ", ".join(f"{r.name} (P={r.acc_bits})" for r in collapsed)
        raise A2QFlowError(
            f"{'quantization' if post_training else 'training'} collapsed: every integer "
            f"weight of {names} is zero",
            "use a larger --acc-bits for that layer, or more --calibration-samples"
            if post_training else
            "use a larger --acc-bits for that layer, or more --float-epochs so the warm start "
            "and EP-init have a trained model to project",
        )
    over = [r for r in reports if not r.within_target]
    if over:
        detail = "; ".join(f"{r.name}: exact {r.exact_bits} bits > P={r.acc_bits}" for r in over)
        raise A2QFlowError(
            f"quantized weights overflow their accumulator target ({detail})",
            "AXE's per-sign budget did not hold after rounding: use a larger --acc-bits, or "
            "--method qat" if post_training else
            "re-train (A2Q+ rounding can break zero-centring), or use --quant a2q",
        )


def warm_start(model: nn.Module, spec: ModelSpec, state: dict[str, Tensor]) -> None:
    """Load weights from another model, never its accumulator width (brevitas keeps
    P in the state dict, so loading a P=14 checkpoint into a P=10 model silently restores 14)."""
    state = {k: v for k, v in state.items() if not k.endswith(ACC_BITS_KEY)}
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise A2QFlowError(
            f"warm-start weights do not fit this model ({mismatched[0]}: "
            f"{tuple(state[mismatched[0]].shape)} vs {tuple(own[mismatched[0]].shape)})",
            "warm-start from a checkpoint of the same architecture and data set",
        )
    model.load_state_dict(state, strict=False)
    check_stored_widths(model, spec)


# --- the loop --------------------------------------------------------------------------------


def steps_per_epoch(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def fit(model: nn.Module, x: Tensor, y: Tensor, epochs: int, lr: float, batch_size: int,
        generator: torch.Generator, desc: str, progress: bool,
        loss_fn: LossFn | None = None,
        after_step: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """Adam with a cosine schedule; returns per-epoch loss and training accuracy."""
    if epochs == 0:
        return []
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * steps_per_epoch(len(x), batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = loss_fn or cross_entropy()
    history = []
    model.train()
    # progress=True: a bar on a terminal, one line per epoch in a log (nohup, CI, Dask workers)
    live = progress and sys.stderr.isatty()
    bar = tqdm(range(epochs), desc=desc, disable=not live, unit="epoch")
    start, step = time.monotonic(), 0
    for epoch in bar:
        total, correct, loss_sum = 0, 0, 0.0
        for idx in _batches(len(x), batch_size, generator):
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = loss_fn(out, xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if after_step is not None:
                after_step(step)
            loss_sum += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            total += len(idx)
        history.append({"loss": loss_sum / total, "train_acc": correct / total})
        bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        if progress and not live:
            print(f"{desc}: epoch {epoch + 1}/{epochs} loss {loss_sum / total:.3f} "
                  f"train acc {correct / total:.3f} ({time.monotonic() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    return history


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    model.eval()
    return torch.cat([torch.as_tensor(model(x[i:i + batch_size]))
                      for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def quantization_aware_training(
    spec: ModelSpec, cfg: TrainConfig, warm_state: dict[str, Tensor], x: Tensor, y: Tensor,
    gen: torch.Generator, loss_fn: LossFn, progress: bool,
) -> tuple[nn.Module, list[dict[str, Any]], int]:
    """QAT in one stage (standard) or several of decreasing width (progressive).

    Every stage starts from the previous weights without their stored width and is re-projected
    (EP-init) onto its own L1 ball; each stage's exact widths are recorded as evidence.
    """
    calib = x[: min(len(x), 256)]
    stages: list[dict[str, Any]] = []
    state, ep_layers, model = warm_state, 0, None
    for stage_spec, epochs in qat_stages(spec, cfg):
        torch.manual_seed(cfg.seed)
        model = build_model(stage_spec)
        warm_start(model, stage_spec, state)
        if cfg.ep_init and stage_spec.quant.accumulator_aware:
            ep_layers = apply_ep_init(model, calib,
                                      zero_centre=stage_spec.quant is QuantMethod.A2Q_PLUS)
        until = reprojection_until(epochs, steps_per_epoch(len(x), cfg.batch_size),
                                   cfg.reproject_settle_epochs)
        hook = (reprojection(model, calib, stage_spec.quant is QuantMethod.A2Q_PLUS,
                             cfg.reproject_every, until)
                if cfg.reproject_every and stage_spec.quant.accumulator_aware else None)
        history = fit(model, x, y, epochs, cfg.qat_lr, cfg.batch_size, gen,
                      f"{spec.quant.value} P={stage_spec.acc_bits}", progress, loss_fn, hook)
        exact = [r.exact_bits for r in layer_reports(model, stage_spec, calib[:2])]
        stages.append({"acc_bits": stage_spec.acc_bits, "epochs": epochs, "history": history,
                       "exact_bits": exact})
        state = model.state_dict()
    return model, stages, ep_layers


# --- the stage -----------------------------------------------------------------------------------


def test_set_fingerprint(ds: Dataset) -> str:
    """What a stored float accuracy was measured on: a warm start reuses the accuracy its
    checkpoint carries only for the very same test images and labels."""
    digest = hashlib.sha256(np.ascontiguousarray(ds.x_test).tobytes())
    digest.update(np.ascontiguousarray(ds.y_test).tobytes())
    return f"{ds.name}:{len(ds.x_test)}:{digest.hexdigest()[:16]}"


def spec_for_dataset(spec: ModelSpec, ds: Dataset) -> ModelSpec:
    c, h, w = ds.input_shape
    return dataclasses.replace(spec, in_features=c * h * w, in_channels=c,
                               num_classes=ds.num_classes)


def run(spec: ModelSpec, cfg: TrainConfig, build_dir: Path, progress: bool = True,
        init_from: Path | None = None) -> dict[str, Any]:
    """Train ``spec`` on ``cfg.dataset`` into ``build_dir``; returns the train.json content."""
    build_dir = Path(build_dir)
    check_feasible(spec)
    ds = load_dataset(cfg.dataset, cfg.data_dir, max_train=cfg.max_train_samples)
    spec = spec_for_dataset(spec, ds)
    if cfg.method.post_training:
        ptq.check_settings(spec, cfg, len(ds.x_train))
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train, y_train = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
    t0 = time.time()

    float_spec = dataclasses.replace(spec, quant=QuantMethod.FLOAT)
    float_model = build_model(float_spec)
    float_history: list[dict[str, float]] = []
    if init_from is not None:
        source = load_checkpoint(init_from, expect=spec)
        if source.float_state is not None:
            float_model.load_state_dict(source.float_state)
        warm_state = source.model.state_dict()
    else:
        float_history = fit(float_model, x_train, y_train, cfg.float_epochs, cfg.lr,
                            cfg.batch_size, gen, "float", progress)
        warm_state = float_model.state_dict()
    test_set = test_set_fingerprint(ds)
    known = source.float_eval if init_from is not None else None
    reused = bool(known and known.get("test_set") == test_set)  # measured once per float model
    float_acc = known["test_acc"] if reused else accuracy(float_model, x_test, y_test)
    float_state = {k: v.clone() for k, v in float_model.state_dict().items()}

    loss_fn = (distillation(float_model, cfg.distill_alpha, cfg.distill_temperature)
               if cfg.distill else cross_entropy())
    ptq_record = None
    if spec.quant is QuantMethod.FLOAT:
        model, stages, ep_layers = float_model, [], 0
    elif cfg.method.post_training:  # AXE from the float weights, optionally then a short QAT
        model, ptq_record = ptq.post_training_quantize(spec, cfg, float_state, x_train, progress)
        ptq_record["test_acc"] = accuracy(model, x_test, y_test)
        stages, ep_layers = [], 0
        if cfg.ptq_finetune_epochs:
            model, stages, ep_layers = quantization_aware_training(
                spec, dataclasses.replace(cfg, qat_epochs=cfg.ptq_finetune_epochs),
                ptq.dequantized_float_state(model, float_state), x_train, y_train, gen,
                loss_fn, progress)
    else:
        model, stages, ep_layers = quantization_aware_training(
            spec, cfg, warm_state, x_train, y_train, gen, loss_fn, progress)
    quant_acc = (ptq_record["test_acc"] if ptq_record is not None and not stages
                 else accuracy(model, x_test, y_test))  # AXE alone: evaluated once, above
    reports = layer_reports(model, spec, x_test[:2])
    check_trained(reports, post_training=cfg.method.post_training and not cfg.ptq_finetune_epochs)

    samples_x = x_test[:N_SAMPLES]
    torch_out = predict(model, samples_x).numpy()
    result = {
        "stage": "train",
        "spec": spec.to_dict(),
        "config": cfg.to_dict(),
        "init_from": str(init_from) if init_from else None,
        "recipe": cfg.recipe_name,
        "method": cfg.method.value,
        "ptq": ptq_record,
        "dataset": {"name": ds.name, "n_train": len(ds.x_train), "n_test": len(ds.x_test),
                    "input_shape": list(ds.input_shape)},
        "float_test_acc": float_acc,
        "float_test_acc_from": "init_from checkpoint" if reused else "measured here",
        "quant_test_acc": quant_acc,
        "ep_init_layers": ep_layers,
        "warnings": dead_channel_warnings(reports),
        "layers": [r.to_json() for r in reports],
        "history": {"float": float_history, "qat": stages},
        "seconds": round(time.time() - t0, 2),
        "versions": {"a2qflow": a2qflow.__version__, "torch": torch.__version__,
                     "brevitas": brevitas.__version__},
    }
    save_checkpoint(build_dir / layout.CHECKPOINT, spec, cfg, model, float_state,
                    {"test_acc": float_acc, "test_set": test_set})
    save_samples(build_dir, x=samples_x.numpy(), y=ds.y_test[:N_SAMPLES], torch_out=torch_out)
    write_json(build_dir / layout.TRAIN_JSON, result)
    return result
