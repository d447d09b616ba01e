"""a2qflow's own qonnx/FINN transformations, one per module."""

from a2qflow.compile.passes.clip_thresholds_to_accumulator_range import (
    ClipThresholdsToAccumulatorRange,
)
from a2qflow.compile.passes.infer_integer_thresholding import InferIntegerThresholdingLayer
from a2qflow.compile.passes.relocate_codegen_dirs import RelocateCodegenDirs
from a2qflow.compile.passes.set_certified_accumulator_width import SetCertifiedAccumulatorWidth

__all__ = [
    "ClipThresholdsToAccumulatorRange",
    "InferIntegerThresholdingLayer",
    "RelocateCodegenDirs",
    "SetCertifiedAccumulatorWidth",
]
