"""a2qflow: accumulator-aware quantized networks from training to FPGA hardware."""

__version__ = "0.1.0"
