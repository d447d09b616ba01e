"""Accumulator-aware post-training quantization (AXE) as a path of the train stage.

AXE (Colbert et al., "Accumulator-Aware Post-Training Quantization", arXiv 2409.17092) adds the
accumulator constraint to the greedy layer-wise PTQ algorithms GPTQ and GPFQ: while a channel's
weights are quantized one input at a time, the running sums of its positive and negative integer
weights are tracked and every next weight is soft-thresholded and clamped so that no input of the
layer's format can drive the signed P-bit accumulator out of range. brevitas 0.13.4 ships the
algorithm in its examples package (``brevitas_examples/common/axe.py``: ``A2GPTQ``, ``A2GPFQ``);
this module drives those classes layer by layer at each layer's own P.

The path:

1. the float model's weights and batch-norm statistics go into a quantized twin (same module
   names) whose weight quantizers are plain per-channel, round-to-nearest, with the scale fixed
   as a parameter from the float weights' statistics (AXE keeps the scale and chooses the
   integers; a scale recomputed from the changed weights would re-quantize them to others);
2. the activation quantizers are calibrated on ``calibration_samples`` training images;
3. layer by layer in forward order, the layer's inputs in the partly quantized network are
   collected on the same images and the layer is quantized: A2GPFQ/A2GPTQ at its P where the
   per-layer policy (:func:`a2qflow.models.layers.layer_acc_bits`, the same as QAT's) constrains
   it, plain GPFQ/GPTQ where it does not (first and last layers by default). With
   ``axe_scales = fitted`` (the default) each channel's scale is searched before an AXE layer is
   quantized and refitted by least squares after every layer (:mod:`a2qflow.axe_scales`);
   ``max`` keeps brevitas's max|w| scales, which shrink a channel's output wherever the budget
   binds (TFC on MNIST at P=9: 55% with max scales, 96% fitted).

The result is checked like QAT's (``train.check_trained``: exact width from the integer weights
<= P, no all-zero layer) before anything is written. AXE's budget is per sign: the positive
weights times the largest input and the negative weights times the largest input each stay
within ``2^(P-1) - 1``, i.e. the A2Q+ budget ``(2^P - 2) / (2^N - 1)`` without A2Q+'s
zero-centring; so a model spec for AXE uses ``quant = a2q+`` (it sets the per-layer targets and
the bound that ``check_feasible`` applies), while the weight quantizers are AXE's own.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import torch
from brevitas.graph.calibrate import calibration_mode
from brevitas.graph.gpfq import GPFQ, gpfq_mode
from brevitas.graph.gptq import GPTQ, gptq_mode
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from brevitas.quant_tensor import QuantTensor
from brevitas_examples.common.axe import A2GPFQ, A2GPTQ
from torch import Tensor, nn

from a2qflow import axe_scales
from a2qflow.config import AxeScales, ModelSpec, QuantMethod, TrainConfig, TrainMethod
from a2qflow.errors import A2QFlowError
from a2qflow.models import build_model, hooked_forward, weight_layers
from a2qflow.models.axe import build_axe_model, holds_axe_model  # noqa: F401  (re-exported)
from a2qflow.models.layers import layer_acc_bits

# --- refusals before any work -------------------------------------------------------------


def layer_targets(spec: ModelSpec) -> list[int | None]:
    """Each weight layer's P under the QAT policy (None: unconstrained)."""
    count = len(weight_layers(build_model(dataclasses.replace(spec, quant=QuantMethod.FLOAT))))
    return [layer_acc_bits(spec, i, count) for i in range(count)]


def check_settings(spec: ModelSpec, cfg: TrainConfig, n_train: int) -> None:
    """Refuse, before float training, settings AXE cannot run with.

    ``train.check_feasible`` (P too small for any non-zero weight) runs before this.
    """
    if spec.quant is not QuantMethod.A2Q_PLUS:
        raise A2QFlowError(
            f"--method {cfg.method.value} needs --quant a2q+ (got {spec.quant.value})",
            "AXE bounds each channel's positive and negative integer weights separately, which "
            "is A2Q+'s budget; use --quant a2q+ (its per-layer P policy applies unchanged)",
        )
    if cfg.calibration_samples > n_train:
        raise A2QFlowError(
            f"calibration_samples={cfg.calibration_samples} is more than the "
            f"{n_train} training images of {cfg.dataset.value}",
            f"use --calibration-samples <= {n_train}"
            + (" (or a larger --max-train-samples)" if cfg.max_train_samples else ""),
        )
    check_supported(build_axe_model(spec), spec)


def _dummy_input(spec: ModelSpec) -> Tensor:
    if spec.arch.value == "cnv":
        return torch.rand(2, spec.in_channels, 32, 32)
    return torch.rand(2, spec.in_features)


def check_supported(model: nn.Module, spec: ModelSpec, sample: Tensor | None = None) -> None:
    """Every weight layer must be one AXE handles (linear, or an ungrouped conv), and every
    constrained layer must receive quantized integers (their bit width and sign set its budget)."""
    named = weight_layers(model)
    targets = [layer_acc_bits(spec, i, len(named)) for i in range(len(named))]
    for name, layer in named:
        if not isinstance(layer, QuantWeightBiasInputOutputLayer):
            raise A2QFlowError(f"layer {name} ({type(layer).__name__}) has no weight quantizer",
                               "AXE quantizes brevitas QuantLinear/QuantConv2d layers only")
        if isinstance(layer, nn.ConvTranspose2d | nn.ConvTranspose1d) or (
                isinstance(layer, nn.Conv2d) and layer.groups != 1):
            raise A2QFlowError(
                f"{spec.arch.value}: layer {name} is a grouped or transposed convolution, "
                "which brevitas's AXE (A2GPFQ/A2GPTQ 0.13.4) does not handle",
                "use --method qat for this architecture")
    seen: dict[str, Any] = {}
    hooked_forward(model, _dummy_input(spec) if sample is None else sample, [
        m.register_forward_pre_hook(lambda _m, args, n=n: seen.__setitem__(n, args[0]))
        for n, m in named])
    for (name, _layer), p in zip(named, targets, strict=True):
        if p is not None and not isinstance(seen.get(name), QuantTensor):
            raise A2QFlowError(
                f"{spec.arch.value}: layer {name} receives unquantized inputs, so AXE cannot "
                f"bound its accumulator at P={p}",
                "use --method qat for this architecture (AXE needs a quantized input to "
                "every constrained layer)")


# --- calibration and the layer-by-layer quantization -----------------------------------------


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _batches(x: Tensor, batch_size: int):
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size]


@torch.no_grad()
def calibrate(model: nn.Module, x: Tensor, batch_size: int, progress: bool) -> float:
    """Activation-quantizer statistics on ``x``; batch-norm statistics stay those of the float
    model. Then one eval pass initialises the weight scales from the float weights."""
    t0 = time.monotonic()
    with calibration_mode(model):
        for m in model.modules():  # calibration_mode trains the whole model: keep BN frozen
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        for xb in _batches(x, batch_size):
            model(xb)
    model.eval()
    model(x[:batch_size])
    seconds = time.monotonic() - t0
    _log(progress, f"axe: calibrated activation quantizers on {len(x)} images "
                   f"({seconds:.1f} s)")
    return seconds


class _FittedScales:
    """Mixin over brevitas's GPxQ optimizers: per-channel scales fitted to the calibration data
    around the layer's update (:mod:`a2qflow.axe_scales`). Before an AXE layer is quantized its
    scales are searched; after any layer is, they are refitted by least squares with the
    integers unchanged, and the layer's weights follow so that they quantize to the same
    integers."""

    search: bool = False  # set on the subclasses that run AXE
    fitted: dict[str, float] | None = None

    def single_layer_update(self, *args: Any, **kwargs: Any) -> None:
        layer = self.layer
        h = self.H[0].clone()
        g = self.G[0].clone() if hasattr(self, "G") else h  # GPTQ fits X̃ only: G = H
        w = layer.weight_orig.detach().flatten(1).to(h.dtype)
        value = _scale_parameter(layer)
        factors = torch.ones(w.shape[0], dtype=h.dtype)
        with torch.no_grad():
            if self.search:
                quant = layer.quant_weight()
                radius = ((2.0 ** float(self.max_accumulator_bit_width) - 2)
                          / float(self.input_max - self.input_min))
                max_int = int(layer.weight_quant.tensor_quant.int_quant.max_int(
                    quant.bit_width))
                factors = axe_scales.search_scale_factors(
                    w, quant.scale.detach().flatten().to(h.dtype), g, h, radius, max_int)
                value.mul_(factors.view(value.shape).to(value.dtype))
        super().single_layer_update(*args, **kwargs)  # type: ignore[misc]
        with torch.no_grad():
            q_hat = layer.quant_weight().value.detach()
            gains = axe_scales.least_squares_gains(q_hat.flatten(1).to(h.dtype), w, g, h)
            value.mul_(gains.view(value.shape).to(value.dtype))
            layer.weight.data = q_hat * gains.view(-1, *[1] * (q_hat.dim() - 1)).to(q_hat.dtype)
        self.fitted = {"scale_factor": round(float(factors.mean()), 3),
                       "gain": round(float(gains.mean()), 3)}


def _scale_parameter(layer: nn.Module) -> Tensor:
    """The per-channel scale parameter of AXE's weight quantizer (``AXEWeightQuant``)."""
    impl = layer.weight_quant.tensor_quant.scaling_impl
    if not isinstance(getattr(impl, "value", None), nn.Parameter):
        raise A2QFlowError(f"{type(layer).__name__}'s weight scale is not a parameter",
                           "fitted AXE scales need AXEWeightQuant; use --axe-scales max")
    return impl.value.data


def _optimizers(method: TrainMethod, scales: AxeScales) -> tuple[type, type, type]:
    """(plain, AXE, mode) classes for ``method``; with fitted scales, the mixin on both."""
    base, axe, mode_cls = ((GPFQ, A2GPFQ, gpfq_mode) if method is TrainMethod.AXE_GPFQ
                           else (GPTQ, A2GPTQ, gptq_mode))
    if scales is AxeScales.FITTED:
        base = type(f"Fitted{base.__name__}", (_FittedScales, base), {})
        axe = type(f"Fitted{axe.__name__}", (_FittedScales, axe), {"search": True})
    return base, axe, mode_cls


def _mode(method: TrainMethod, model: nn.Module, targets: dict[str, int | None],
          constrained: bool, act_order: bool, scales: AxeScales):
    """brevitas's gpfq_mode/gptq_mode, dispatching each layer to AXE at its own P."""
    base, axe, mode_cls = _optimizers(method, scales)
    gptq = method is TrainMethod.AXE_GPTQ

    class _PerLayerAXE(mode_cls):
        def initialize_module_optimizer(self, layer, name, len_parallel_layers,
                                        create_weight_orig):
            kwargs = {"layer": layer, "name": name, "act_order": self.act_order,
                      "len_parallel_layers": len_parallel_layers,
                      "create_weight_orig": create_weight_orig,
                      "device": self.device, "dtype": self.dtype}
            if gptq:
                kwargs["num_blocks"] = self.num_blocks
            p = targets[name]
            if p is None or not constrained:
                return base(**kwargs)
            return axe(**kwargs, max_accumulator_bit_width=p, max_accumulator_tile_size=None)

    return _PerLayerAXE(model, use_quant_activations=True, create_weight_orig=True,
                        act_order=act_order)


@torch.no_grad()
def quantize_layers(model: nn.Module, spec: ModelSpec, method: TrainMethod, x: Tensor,
                    batch_size: int, progress: bool, constrained: bool = True,
                    act_order: bool = True, scales: AxeScales = AxeScales.FITTED,
                    ) -> list[dict[str, Any]]:
    """GPFQ/GPTQ layer by layer, AXE-constrained at each layer's P (``constrained=False``:
    plain GPFQ/GPTQ everywhere, the negative control), with ``scales`` fitted or brevitas's.
    Returns per-layer timings."""
    from a2qflow import bounds

    named = weight_layers(model)
    targets = dict(zip((n for n, _ in named), layer_targets(spec), strict=True))
    layers = dict(named)
    model.eval()
    log: list[dict[str, Any]] = []
    with _mode(method, model, targets, constrained, act_order, scales) as gpxq:
        for index in range(gpxq.num_layers):
            t0 = time.monotonic()
            for xb in _batches(x, batch_size):
                gpxq.model(xb)
            names = sorted(gpxq.current_layer.layer_names)
            gpxq.update()
            for name in names:
                layer = layers[name]
                q_in = gpxq.gpxq_layers[name].quant_metadata
                q = layer.quant_weight().int().reshape(layer.weight.shape[0], -1).numpy()
                exact = (bounds.exact_accumulator_bits(q, int(q_in.bit_width),
                                                       bool(q_in.signed))
                         if q_in is not None else None)
                entry = {"name": name, "k": int(q.shape[1]), "acc_bits": targets[name],
                         "axe": targets[name] is not None and constrained,
                         "exact_bits": exact, "sparsity": round(float((q == 0).mean()), 4),
                         "seconds": round(time.monotonic() - t0, 2)}
                fitted = gpxq.gpxq_layers[name].fitted if isinstance(
                    gpxq.gpxq_layers[name], _FittedScales) else None
                if fitted is not None:  # mean per-channel scale factor and refitted gain
                    entry.update(fitted)
                log.append(entry)
                target = f"P={targets[name]}" if entry["axe"] else "unconstrained"
                scaled = (f", scales x{fitted['scale_factor']:.2f} then x{fitted['gain']:.2f}"
                          if fitted else "")
                _log(progress, f"axe: layer {index + 1}/{gpxq.num_layers} {name} "
                               f"(K={entry['k']}, {target}): exact {exact} bits, "
                               f"{entry['sparsity']:.0%} zeros{scaled} "
                               f"({entry['seconds']:.1f} s)")
    for _name, layer in named:  # GPxQ's copy of the float weights is not part of the model
        if "weight_orig" in layer._buffers:
            del layer._buffers["weight_orig"]
    return log


def calibration_set(x: Tensor, n: int, seed: int) -> Tensor:
    """``n`` training images drawn without replacement (seeded)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order[:n]]


def post_training_quantize(spec: ModelSpec, cfg: TrainConfig, float_state: dict[str, Tensor],
                           x_train: Tensor, progress: bool = True, constrained: bool = True,
                           ) -> tuple[nn.Module, dict[str, Any]]:
    """AXE from float weights: returns the quantized model and the record for train.json."""
    if not cfg.method.post_training:
        raise ValueError(f"{cfg.method} is not a post-training method")
    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    model = build_axe_model(spec)
    state = {k: v for k, v in float_state.items() if k in model.state_dict()}
    missing = [k for k, _ in model.named_parameters() if k.endswith(".weight")
               and "quant" not in k and k not in state]
    if missing:
        raise A2QFlowError(f"the float weights lack {missing[0]}",
                           "start AXE from a float model of the same architecture")
    model.load_state_dict(state, strict=False)
    calib = calibration_set(x_train, cfg.calibration_samples, cfg.seed)
    calib_s = calibrate(model, calib, cfg.batch_size, progress)
    layers = quantize_layers(model, spec, cfg.method, calib, cfg.batch_size, progress,
                             constrained=constrained, scales=cfg.axe_scales)
    model.eval()
    record = {"method": cfg.method.value, "scales": cfg.axe_scales.value,
              "calibration_samples": len(calib),
              "constrained": constrained, "calibration_seconds": round(calib_s, 2),
              "seconds": round(time.monotonic() - t0, 2), "layers": layers}
    return model, record


def dequantized_float_state(model: nn.Module, float_state: dict[str, Tensor]
                            ) -> dict[str, Tensor]:
    """The float model's state with each weight replaced by AXE's dequantized weight: the warm
    start of the optional QAT fine-tune."""
    state = {k: v.clone() for k, v in float_state.items()}
    with torch.no_grad():
        for name, layer in weight_layers(model):
            state[f"{name}.weight"] = layer.quant_weight().value.detach().clone()
    return state
