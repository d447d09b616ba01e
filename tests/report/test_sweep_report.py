"""A tiny accumulator sweep on a local Dask cluster, through to the report in a real browser."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from a2qflow import report, sweep
from a2qflow.config import load_config
from a2qflow.report.collect import (
    channel_width_summary,
    compressed_weight_bits,
    pareto_front,
)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    cfg = load_config(REPO / "configs" / "demo.yaml")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, float_epochs=4,
                                                             qat_epochs=3),
                              stages=("train", "export", "compile"))
    out = tmp_path_factory.mktemp("sweep")
    # P=5 is infeasible for A2Q: that point must fail alone, with its reason
    sweep.run(cfg, [12, 5], ["a2q"], out, workers=2, echo=lambda _: None)
    return out


@pytest.mark.slow
def test_sweep_runs_every_point_and_records_failures(sweep_dir):
    result = json.loads((sweep_dir / "sweep.json").read_text())
    status = {p["name"]: p["status"] for p in result["points"]}
    assert status == {"a2q_P12": "ok", "a2q_P5": "failed"}
    failed = next(p for p in result["points"] if p["status"] == "failed")
    assert "infeasible" in failed["error"]
    ok = next(p for p in result["points"] if p["status"] == "ok")
    assert ok["summary"]["certificate"]["all_proven"]
    assert (sweep_dir / "a2q_P12" / "model.qonnx.onnx").is_file()


@pytest.mark.slow
def test_report_writes_tables_and_plots(sweep_dir):
    result = report.run([sweep_dir])
    md = (sweep_dir / "report.md").read_text()
    assert "| a2q_P12 | a2q | qat (standard) | 12 |" in md
    assert "failed: accumulator width P=5 is infeasible" in md
    assert "FINN" in md  # resource figures name their source
    assert "Certificate: a2q_P12 (all proven)" in md
    assert "Per-channel exact widths: a2q_P12" in md
    assert "channel_widths.png" in result["figures"]
    for name in result["figures"]:
        assert (sweep_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_report_html_renders_its_plots_in_a_headless_browser(sweep_dir, tmp_path):
    report.run([sweep_dir])
    html = (sweep_dir / "report.html").read_text()
    # the probe is the test's, not the report's: it counts images the browser decoded
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             "document.body.setAttribute('data-probe', imgs.length + ':' +"
             " imgs.filter(i => i.complete && i.naturalWidth > 0).length); });</script>")
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    match = re.search(r'data-probe="(\d+):(\d+)"', out.stdout)
    assert match, out.stderr[-2000:]
    total, decoded = map(int, match.groups())
    assert total >= 5 and decoded == total


def test_pareto_front_keeps_only_undominated_points():
    pts = [(100, 0.90, "a"), (80, 0.95, "b"), (120, 0.97, "c"), (90, 0.93, "d"), (60, 0.5, "e")]
    assert [p[2] for p in pareto_front(pts)] == ["e", "b", "c"]


def test_compressed_size_uses_csr_only_when_smaller():
    dense = compressed_weight_bits(64, 64, 4, 0.0)
    assert dense["best_bits"] == dense["dense_bits"] == 64 * 64 * 4
    sparse = compressed_weight_bits(64, 64, 4, 0.9)
    assert sparse["best_bits"] == sparse["sparse_bits"] < sparse["dense_bits"]


def test_channel_width_summary_counts_the_root_bits_a_per_layer_width_wastes():
    cert = {"layers": [
        {"layer": "fc0", "exact_bits": 12, "chosen_bits": 12, "channel_exact_bits": [12, 9, 10]},
        {"layer": "fc1", "exact_bits": 8, "chosen_bits": 9},  # no per-channel record: skipped
    ]}
    (row,) = channel_width_summary(cert)
    assert (row["min"], row["median"], row["max"]) == (9, 10, 12)
    assert row["root_bits_saved"] == (12 - 9) + (12 - 10)
    assert row["channels"] == 3
