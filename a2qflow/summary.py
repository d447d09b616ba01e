"""One build's key figures, read from its artifacts (whatever stages have run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from a2qflow import layout


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _imported(build_dir: Path) -> dict[str, Any] | None:
    """An imported build's layers in train.json's shape (no accuracy without labels)."""
    imported = _load(build_dir / layout.IMPORT_JSON)
    if imported is None:
        return None
    verify = _load(build_dir / layout.VERIFY_JSON) or {}
    return {"float_test_acc": None, "quant_test_acc": (verify.get("chain") or {}).get("accuracy"),
            "recipe": "imported", "layers": imported["layers"]}


def summarize(build_dir: Path) -> dict[str, Any]:
    """Accuracy, per-layer widths and resources of a build; absent stages give None."""
    build_dir = Path(build_dir)
    train = _load(build_dir / layout.TRAIN_JSON) or _imported(build_dir)
    out: dict[str, Any] = {
        "float_acc": train and train["float_test_acc"],
        "acc": train and train["quant_test_acc"],
        "recipe": train and train.get("recipe"),
        "layers": train and [{k: layer[k] for k in ("name", "acc_bits", "exact_bits", "max_l1",
                                                    "sparsity", "k", "channels", "weight_bits")}
                             for layer in train["layers"]],
        "certificate": _load(build_dir / layout.CERTIFICATE),
        "estimates": _load(build_dir / layout.ESTIMATES),
        "verify": _load(build_dir / layout.VERIFY_JSON),
        "sim": _load(build_dir / layout.SIM_JSON),
        "synth": _load(build_dir / layout.SYNTH_JSON),
        "pnr": _load(build_dir / layout.PNR_JSON),
    }
    return out
