"""Shared fixtures: small real models trained on scikit-learn's digits, cached per session."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from a2qflow import export, train
from a2qflow.config import ModelSpec, TrainConfig

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

warnings.filterwarnings("ignore", module="brevitas")


def pytest_addoption(parser):
    parser.addoption("--bad-input-table", default=None,
                     help="write the bad-input table (docs/bad-input.md) from test_bad_input")


def quick_config(**overrides) -> TrainConfig:
    """A few epochs on digits: seconds on 2 cores, enough for ~95% accuracy."""
    base = {"dataset": "digits", "float_epochs": 8, "qat_epochs": 6, "batch_size": 64,
            "seed": 0}
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def trained_build(tmp_path_factory) -> Callable[..., Path]:
    """``trained_build(quant="a2q+", acc_bits=12, exported=True, **spec)`` -> a build directory.

    Built once per distinct argument set and shared; tests that modify a build must copy it
    (``copy_build``) first.
    """
    cache: dict[tuple, Path] = {}

    def build(quant: str = "a2q+", acc_bits: int = 12, exported: bool = True,
              **spec_fields) -> Path:
        key = (quant, acc_bits, exported, tuple(sorted(spec_fields.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"build_{quant.replace('+', 'p')}_{acc_bits}")
            spec = ModelSpec(arch="tfc", quant=quant, acc_bits=acc_bits, **spec_fields)
            train.run(spec, quick_config(), out, progress=False)
            if exported:
                export.run(out)
            cache[key] = out
        return cache[key]

    return build


@pytest.fixture(scope="session")
def compiled_small(trained_build, tmp_path_factory) -> Path:
    """A small A2Q+ TFC (hidden=16) compiled for high throughput: the rtl and synth tests'
    design. Tests may add rtl/ and synth.json to it but must not change the compile outputs."""
    from a2qflow import compile as compile_stage

    src = trained_build(quant="a2q+", acc_bits=12, hidden=16)
    dst = tmp_path_factory.mktemp("compiled_small")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    compile_stage.run(dst, "pynq-z1", target_fps=400_000)
    return dst


@pytest.fixture(scope="session")
def simulated_small(compiled_small, tmp_path_factory) -> Path:
    """``compiled_small`` verified and through rtl (with the 32-bit variant): synth's input."""
    from a2qflow import rtl, verify

    dst = tmp_path_factory.mktemp("simulated_small")
    shutil.copytree(compiled_small, dst, dirs_exist_ok=True)
    verify.run(dst)
    rtl.run(dst, max_images=16, compare_acc_bits=32)
    return dst


@pytest.fixture
def copy_build(tmp_path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy
