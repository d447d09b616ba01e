"""CNV: FINN's CIFAR-10 network, 6 valid 3x3 convolutions + 3 fully connected layers.

32x32 -> conv 30 -> conv 28 -> pool 14 -> conv 12 -> conv 10 -> pool 5 -> conv 3 -> conv 1.
Channels (h, h, 2h, 2h, 4h, 4h) and FC width 8h with h = ``spec.hidden`` (64 = FINN's CNV).
"""

from __future__ import annotations

from torch import Tensor, nn

from a2qflow.config import ModelSpec
from a2qflow.models import layers


class CNV(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        h = spec.hidden
        channels = [spec.in_channels, h, h, 2 * h, 2 * h, 4 * h, 4 * h]
        fc = [4 * h, 8 * h, 8 * h, spec.num_classes]
        count = 6 + 3
        body: list[nn.Module] = [layers.input_layer(spec)]
        for i in range(6):
            body += [
                layers.conv(spec, channels[i], channels[i + 1],
                            layers.layer_acc_bits(spec, i, count)),
                nn.BatchNorm2d(channels[i + 1]),
                layers.activation(spec),
            ]
            if i in (1, 3):
                body.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*body)
        head: list[nn.Module] = []
        for j in range(3):
            head.append(layers.linear(spec, fc[j], fc[j + 1],
                                      layers.layer_acc_bits(spec, 6 + j, count)))
            if j < 2:
                head += [nn.BatchNorm1d(fc[j + 1]), layers.activation(spec)]
        self.classifier = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))
