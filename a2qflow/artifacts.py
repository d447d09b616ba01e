"""Build-directory I/O: atomic writes, content hashes and stage manifests.

Every artifact is written to a temporary file in the same directory and renamed into place,
so an interrupted or failed stage never leaves a half-written file over a good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from a2qflow.errors import A2QFlowError


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written directory into place; the old one is removed only after the rename."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{time.time_ns()}")
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(target: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def read_json(path: Path, what: str, produced_by: str) -> Any:
    """Read an artifact, failing with a message that names the stage that makes it."""
    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"{what} not found: {path}", f"run `{produced_by}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise A2QFlowError(
            f"{what} at {path} is not valid JSON ({exc})", f"re-run `{produced_by}`"
        ) from exc


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(data: Any) -> str:
    """Stable hash of a JSON-able configuration."""
    blob = json.dumps(data, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "value"):  # enums
        return obj.value
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
