"""Size every MVAU/VVAU accumulator from its integer weights, checked against the trained P."""

from __future__ import annotations

import json
from typing import Any

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes

from a2qflow import bounds
from a2qflow.errors import A2QFlowError
from a2qflow.graph import (
    CERTIFIED_KEY,
    LayerRecord,
    accumulator_extremes,
    match_layers,
    read_layer_records,
)


class SetCertifiedAccumulatorWidth(Transformation):
    """Set ``accDataType`` of each MVAU/VVAU to the exact signed width its weights need.

    The exact width is the physical limit for constant weights; for an A2Q/A2Q+ layer it must
    not exceed the trained P (else the weights do not honour the training target and compile
    stops), and a user-forced width (``acc_bits``) is used only where it holds the exact range.
    Records the result in the ``a2qflow.certified`` metadata, which later steps are checked
    against.
    """

    def __init__(self, acc_bits: int | None = None):
        super().__init__()
        if acc_bits is not None and not 2 <= acc_bits <= bounds.MAX_ACC_BITS:
            raise A2QFlowError(f"acc_bits={acc_bits} is not valid",
                               f"use 2 to {bounds.MAX_ACC_BITS} bits")
        self.acc_bits = acc_bits

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        pairs = match_layers(model, read_layer_records(model))
        exact = [accumulator_extremes(model, node).bits for node, _ in pairs]
        self._refuse_if_infeasible(pairs, exact)
        certified = []
        for (node, rec), bits in zip(pairs, exact, strict=True):
            chosen = self.acc_bits if self.acc_bits is not None else bits
            adt = DataType[f"INT{chosen}"]
            inst = getCustomOp(node)
            inst.set_nodeattr("accDataType", adt.name)
            if inst.get_nodeattr("noActivation"):
                # without thresholds the accumulator is the output (sign-extended by the stream)
                inst.set_nodeattr("outputDataType", adt.name)
            certified.append({"layer": rec.name, "node": node.name, "exact_bits": bits,
                              "acc": adt.name, "register": adt.name,
                              "forced": self.acc_bits is not None})
        model.set_metadata_prop(CERTIFIED_KEY, json.dumps(certified))
        model = model.transform(InferDataTypes())
        return model, False

    def _refuse_if_infeasible(self, pairs: list[tuple[Any, LayerRecord]],
                              exact: list[int]) -> None:
        over_p = [(rec, bits) for (_, rec), bits in zip(pairs, exact, strict=True)
                  if rec.acc_bits is not None and bits > rec.acc_bits]
        if over_p:
            lines = "; ".join(f"layer {r.name} was trained for P={r.acc_bits} but its integer "
                              f"weights need {b} bits" for r, b in over_p)
            raise A2QFlowError(
                f"accumulator target not met: {lines}",
                "retrain the layer at that P (a checkpoint restored across widths keeps its old "
                "P), or export again; the exact width of the trained weights is what counts",
            )
        if self.acc_bits is None:
            return
        below = [(rec, bits) for (_, rec), bits in zip(pairs, exact, strict=True)
                 if bits > self.acc_bits]
        if below:
            lines = "; ".join(f"layer {r.name} ({r.quant}, K={r.k}) needs {b} bits"
                              for r, b in below)
            raise A2QFlowError(
                f"--acc-bits {self.acc_bits} is too narrow: {lines}; the design would overflow",
                f"use --acc-bits {max(exact)} or more, or train with A2Q/A2Q+ at "
                f"P={self.acc_bits}",
            )
