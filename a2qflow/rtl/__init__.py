"""The open hardware backend: Verilog per FINN layer, a dataflow top level, Verilator checks."""

from a2qflow.rtl.stage import run

__all__ = ["run"]
