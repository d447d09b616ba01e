"""`a2qflow sweep`: a grid of builds (accumulator width x quantizer) as independent Dask jobs.

A local cluster by default, an existing one with ``scheduler``. Each point is a whole
`a2qflow build` into ``SWEEP_DIR/<quant>_P<bits>``; a failing point is recorded with its error
and does not stop the others. ``sweep.json`` lists every point with its status and summary.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from a2qflow.artifacts import write_json
from a2qflow.config import BuildConfig, QuantMethod
from a2qflow.errors import A2QFlowError
from a2qflow.validate import enum_value


def point_name(quant: str, acc_bits: int) -> str:
    return f"{quant.replace('+', 'p')}_P{acc_bits}"


def grid(base: BuildConfig, acc_bits: list[int], quants: list[str]) -> dict[str, BuildConfig]:
    """One build config per (quant, P), named after both."""
    configs = {}
    for quant in quants:
        enum_value(QuantMethod, quant, "quant")  # validated early, before any job starts
        for p in acc_bits:
            name = point_name(quant, p)
            model = dataclasses.replace(base.model, quant=quant, acc_bits=p)
            configs[name] = dataclasses.replace(base, name=f"{base.name}/{name}", model=model)
    return configs


def build_point(config: dict[str, Any], build_dir: str) -> dict[str, Any]:
    """Runs on a Dask worker: one whole build, then its summary."""
    from a2qflow import build, summary

    cfg = BuildConfig.from_dict(config)
    stages = build.run(cfg, Path(build_dir), echo=lambda _msg: None)
    return {"stages": stages, "summary": summary.summarize(Path(build_dir))}


def _client(scheduler: str | None, workers: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except OSError as exc:
            raise A2QFlowError(f"cannot reach the Dask scheduler at {scheduler} ({exc})",
                               "start it with `dask scheduler`, or omit --scheduler for a "
                               "local cluster") from exc
    # failed points are reported in sweep.json and on the console, not as worker log noise
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster)


def run(base: BuildConfig, acc_bits: list[int], quants: list[str], sweep_dir: Path,
        scheduler: str | None = None, workers: int = 2,
        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the grid on Dask; returns (and writes) the sweep.json content."""
    from dask.distributed import as_completed

    sweep_dir = Path(sweep_dir)
    configs = grid(base, acc_bits, quants)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    points: dict[str, dict[str, Any]] = {}
    with _client(scheduler, workers) as client:
        futures = {client.submit(build_point, cfg.to_dict(), str((sweep_dir / name).resolve()),
                                 key=f"a2qflow-{name}-{time.time_ns()}", pure=False): name
                   for name, cfg in configs.items()}
        echo(f"sweep: {len(futures)} builds on {client.scheduler.address}")
        for done, future in enumerate(as_completed(futures), 1):
            name = futures[future]
            cfg = configs[name]
            point = {"name": name, "quant": cfg.model.quant.value, "acc_bits": cfg.model.acc_bits,
                     "build_dir": name}
            try:
                point |= {"status": "ok"} | future.result()
                echo(f"[{done}/{len(futures)}] {name} ok")
            except Exception as exc:  # one failed point must not stop the sweep
                problem = exc.problem if isinstance(exc, A2QFlowError) else repr(exc)
                point |= {"status": "failed", "error": problem}
                echo(f"[{done}/{len(futures)}] {name} FAILED: {problem}")
            points[name] = point
    result = {"base": base.to_dict(), "acc_bits": acc_bits, "quants": quants,
              "points": [points[n] for n in configs], "seconds": round(time.time() - t0, 1)}
    write_json(sweep_dir / "sweep.json", result)
    return result
