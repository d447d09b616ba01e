"""One build's key figures, read from its artifacts (whatever stages have run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from a2qflow import layout


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def trained_record(build_dir: Path) -> dict[str, Any] | None:
    """``train.json``, or for a model a2qflow did not train, ``import.json`` in its shape (the
    accuracy is verify's on the imported samples, where they had labels); None for neither."""
    build_dir = Path(build_dir)
    train = _load(build_dir / layout.TRAIN_JSON)
    if train is not None:
        return train
    imported = _load(build_dir / layout.IMPORT_JSON)
    if imported is None:
        return None
    verify = _load(build_dir / layout.VERIFY_JSON) or {}
    widths = [r["acc_bits"] for r in imported["layers"] if r["acc_bits"] is not None]
    return {"spec": {"quant": "imported", "acc_bits": max(widths) if widths else None,
                     "arch": Path(imported["source"]["path"]).name},
            "float_test_acc": None, "quant_test_acc": (verify.get("chain") or {}).get("accuracy"),
            "recipe": "imported", "layers": imported["layers"], "config": {"method": "imported"}}


def summarize(build_dir: Path) -> dict[str, Any]:
    """Accuracy, per-layer widths and resources of a build; absent stages give None."""
    build_dir = Path(build_dir)
    train = trained_record(build_dir)
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
