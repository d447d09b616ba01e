"""TFC: FINN's fully connected network (3 hidden layers of 64 by default)."""

from __future__ import annotations

from torch import Tensor, nn

from a2qflow.config import ModelSpec
from a2qflow.models import layers

HIDDEN_LAYERS = 3


class TFC(nn.Module):
    """input quant -> [linear -> BN -> ReLU] x 3 -> linear (logits)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        widths = [spec.in_features] + [spec.hidden] * HIDDEN_LAYERS
        count = HIDDEN_LAYERS + 1
        body: list[nn.Module] = [layers.input_layer(spec)]
        for i in range(HIDDEN_LAYERS):
            body += [
                layers.linear(spec, widths[i], widths[i + 1],
                              layers.layer_acc_bits(spec, i, count)),
                nn.BatchNorm1d(widths[i + 1]),
                layers.activation(spec),
            ]
        body.append(
            layers.linear(spec, spec.hidden, spec.num_classes,
                          layers.layer_acc_bits(spec, count - 1, count))
        )
        self.features = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x.flatten(1))
