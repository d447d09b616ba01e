"""Everything FINN (finn-plus 1.6.1) needs to run without Vivado, in one place.

What was found by trying, and how it is handled:

- **Settings.** FINN's transformations read ``finn.util.settings.get_settings()``, which fails
  unless FINN was started by its CLI, or else rebuilds settings from ``FINN_SETTINGS`` /
  ``FINN_BUILD_DIR`` and, looking for a settings file, creates ``~/.finn/``. We install a
  settings object directly, pointing at a settings file path inside the work directory that does
  not exist (so the user's ``~/.finn/settings.yaml`` is neither read nor created), with
  ``auto_set_environment_vars=False`` so nothing leaks into ``os.environ``. The previous settings
  are restored on exit.
- **FINN_BUILD_DIR.** ``make_build_dir`` (used by code generation) creates its temporary folders
  under the settings' ``finn_build_dir``: we point it at the build directory's code-generation
  folder, so FINN writes nothing outside the build directory.
- **XILINX_VIVADO / finn.xsi.** Importing ``finn.builder.build_dataflow_steps`` (and FINN's own
  step functions) evaluates ``from finn.xsi import SimEngine``, which raises ``OSError`` without
  ``XILINX_VIVADO``. a2qflow therefore never imports the builder: the pipeline is made of FINN's
  transformations and analyses, which import ``finn.xsi`` lazily and only touch it for rtlsim.
  :func:`vivado_status` is the single check of the Vivado tools for the paths that need them.
- **psutil.** Imported by ``finn.transformation.fpgadataflow.simulation_build`` without being a
  declared dependency; it is pinned in ``requirements/toolchain.txt`` (the compile path here does
  not import that module).
- **Execution.** Specialized layers (``MVAU_hls``, ``Thresholding_rtl``...) execute only in
  cppsim (needs finn-hlslib, not on any package registry) or rtlsim (needs Vivado's xsim), so
  verification executes the generic HW-layer graph, whose layers have a Python ``execute_node``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SETTINGS_FILE_NAME = "finn_settings.yaml"  # never created: makes FINN ignore ~/.finn


@contextlib.contextmanager
def finn_session(work_dir: Path) -> Iterator[Path]:
    """Run FINN transformations with generated code going under ``work_dir``."""
    from finn.interface.settings import FINNSettings
    from finn.util import settings as finn_settings

    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    previous = finn_settings._SETTINGS
    finn_settings._SETTINGS = FINNSettings.init(
        override_settings_path=work_dir / SETTINGS_FILE_NAME,
        flow_config=work_dir / "flow.yaml",
        finn_build_dir=str(work_dir),
        auto_set_environment_vars=False,
    )
    try:
        yield work_dir
    finally:
        finn_settings._SETTINGS = previous


@dataclass(frozen=True)
class VivadoStatus:
    """Which of the Xilinx tools FINN's hardware steps need are present."""

    vivado: str | None  # XILINX_VIVADO, when it points at a directory with bin/vivado
    vitis_hls: str | None  # XILINX_HLS (or Vitis HLS on PATH)
    missing: tuple[str, ...]

    @property
    def available(self) -> bool:
        return not self.missing


def vivado_status(environ: dict[str, str] | None = None) -> VivadoStatus:
    """Check for Vivado and Vitis HLS the way FINN finds them (environment, then PATH)."""
    env = dict(os.environ if environ is None else environ)
    missing: list[str] = []
    vivado = env.get("XILINX_VIVADO")
    if not vivado:
        missing.append("XILINX_VIVADO is not set (source Vivado's settings64.sh)")
        vivado = None
    elif not (Path(vivado) / "bin" / "vivado").exists():
        missing.append(f"XILINX_VIVADO={vivado} has no bin/vivado")
        vivado = None
    hls = env.get("XILINX_HLS")
    if hls and (Path(hls) / "bin" / "vitis_hls").exists():
        vitis_hls: str | None = hls
    else:
        vitis_hls = shutil.which("vitis_hls", path=env.get("PATH"))
        if vitis_hls is None:
            missing.append("Vitis HLS not found: XILINX_HLS is not set (or has no "
                           "bin/vitis_hls) and no vitis_hls is on PATH (source Vitis HLS's "
                           "settings64.sh)")
    return VivadoStatus(vivado=vivado, vitis_hls=vitis_hls, missing=tuple(missing))
