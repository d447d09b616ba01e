"""Compile stage: FINN dataflow design with accumulators sized and proven (see pipeline.py)."""

from a2qflow.compile.pipeline import STEPS, run

__all__ = ["STEPS", "run"]
