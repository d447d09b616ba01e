"""`a2qflow build`: typed config, stages in order, skip what is up to date, resume."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import build, layout
from a2qflow.cli import cli
from a2qflow.config import BuildConfig, load_config
from a2qflow.errors import A2QFlowError

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**train) -> BuildConfig:
    cfg = load_config(REPO / "configs" / "demo.yaml")
    t = dataclasses.replace(cfg.train, float_epochs=2, qat_epochs=1, **train)
    return dataclasses.replace(cfg, train=t, stages=("train", "export"))


def test_every_shipped_config_loads():
    names = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert {"demo", "tfc-w2a2", "tfc-w4a4", "tfc-w8a8", "cnv-w4a4"} <= names
    for path in (REPO / "configs").glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.hardware.folding or cfg.hardware.target_fps, path.name
        if cfg.hardware.folding:
            assert Path(cfg.hardware.folding).is_file(), cfg.hardware.folding


@pytest.mark.parametrize("data, message", [
    ({"model": {"quant": "a3q"}}, r"quant='a3q' is not valid(?s:.*)'a2q\+'"),
    ({"model": {"widht": 3}}, "model: unknown field 'widht'"),
    ({"train": {"epochs": 3}}, r"train: unknown field 'epochs'(?s:.*)float_epochs"),
    ({"hardware": {"board": 3, "clock": 5}}, "unknown field 'clock'"),
    ({"stages": ["train", "bitstream"]}, "unknown stage 'bitstream'"),
    ({"model": {"acc_bits": 40}}, r"acc_bits=40 is not valid(?s:.*)2 to 32"),
    ({"bogus": 1}, "unknown field 'bogus'"),
    ({"hardware": {"unrolled_generator": "hls4ml"}}, r"unrolled_generator='hls4ml' is not valid"),
    ({"hardware": {"backend": "vivado"}}, r"backend='vivado' is not valid(?s:.*)'finn-rtl'"),
])
def test_bad_config_names_the_field_and_allowed_values(data, message):
    with pytest.raises(A2QFlowError, match=message):
        BuildConfig.from_dict(data)


def test_an_ecp5_board_adds_place_and_route_and_an_imported_build_skips_training(tmp_path):
    assert BuildConfig.from_dict({"hardware": {"board": "ulx3s-85f"}}).stages[-2:] == \
        ("synth", "pnr")
    assert "pnr" not in BuildConfig.from_dict({}).stages
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    imported = BuildConfig.from_dict({"import": {"model": "m.onnx"}}, relative_to=tmp_path)
    assert imported.stages[0] == "import" and "train" not in imported.stages
    assert imported.imported.model == str(model.resolve())


def test_bad_yaml_is_one_clear_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {arch: tfc\n")
    with pytest.raises(A2QFlowError, match="not valid YAML"):
        load_config(path)


@pytest.mark.slow
def test_build_skips_up_to_date_stages_and_reruns_changed_ones(tmp_path):
    cfg = tiny_config()
    assert {k: v["status"] for k, v in build.run(cfg, tmp_path, echo=lambda _: None).items()} \
        == {"train": "ran", "export": "ran"}
    again = build.run(cfg, tmp_path, echo=lambda _: None)
    assert {k: v["status"] for k, v in again.items()} == {"train": "skipped", "export": "skipped"}
    changed = tiny_config(seed=1)
    third = build.run(changed, tmp_path, echo=lambda _: None)
    assert {k: v["status"] for k, v in third.items()} == {"train": "ran", "export": "ran"}


@pytest.mark.slow
def test_build_resumes_after_an_interrupted_stage(tmp_path, monkeypatch):
    cfg = tiny_config()

    def interrupted(c, d):
        raise KeyboardInterrupt

    stages = tuple(dataclasses.replace(s, run=interrupted) if s.name == "export" else s
                   for s in build.STAGES)
    monkeypatch.setattr(build, "STAGES", stages)
    with pytest.raises(KeyboardInterrupt):
        build.run(cfg, tmp_path, echo=lambda _: None)
    monkeypatch.undo()
    resumed = build.run(cfg, tmp_path, echo=lambda _: None)
    assert {k: v["status"] for k, v in resumed.items()} == {"train": "skipped", "export": "ran"}


@pytest.mark.slow
def test_a_hand_edited_artifact_is_rebuilt(tmp_path):
    cfg = tiny_config()
    build.run(cfg, tmp_path, echo=lambda _: None)
    (tmp_path / "export.json").write_text("{}")
    again = build.run(cfg, tmp_path, echo=lambda _: None)
    assert again["export"]["status"] == "ran" and again["train"]["status"] == "skipped"


def test_code_hash_follows_every_module_a_stage_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "a2qflow"
    pkg.mkdir()
    (tmp_path / "hls").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stage.py").write_text("def run():\n    from a2qflow import helper\n")
    (pkg / "helper.py").write_text("x = 1\n")
    (pkg / "unrelated.py").write_text("y = 1\n")
    (tmp_path / "hls" / "mvau.v.j2").write_text("module m; endmodule\n")
    monkeypatch.setattr(build, "PACKAGE_ROOT", pkg)
    monkeypatch.setattr(build, "REPO_ROOT", tmp_path)
    files = layout.StageFiles("a2qflow.stage", (), (), assets=("hls",))
    assert {p.name for p in build.module_closure("a2qflow.stage")} == {
        "__init__.py", "stage.py", "helper.py"}
    before = build.code_hash(files)
    (pkg / "unrelated.py").write_text("y = 2\n")
    assert build.code_hash(files) == before
    (pkg / "helper.py").write_text("x = 2\n")
    after_helper = build.code_hash(files)
    (tmp_path / "hls" / "mvau.v.j2").write_text("module m2; endmodule\n")
    assert len({before, after_helper, build.code_hash(files)}) == 3


def test_verify_code_hash_covers_the_graph_helpers_it_runs():
    closure = {p.relative_to(build.PACKAGE_ROOT).as_posix()
               for p in build.module_closure(layout.stage_files("verify").module)}
    assert {"verify.py", "graph.py", "layout.py", "bounds.py"} <= closure


def hardware_build(target_fps: float) -> BuildConfig:
    """A small TFC through every stage (hidden=16, a few epochs, no 32-bit variant)."""
    cfg = load_config(REPO / "configs" / "demo.yaml")
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, hidden=16),
        train=dataclasses.replace(cfg.train, float_epochs=6, qat_epochs=4),
        hardware=dataclasses.replace(cfg.hardware, target_fps=target_fps, compare_acc_bits=None))


def folding_of(build_dir: Path, result_file: str) -> list[tuple[int, int]]:
    data = json.loads((build_dir / result_file).read_text())
    layers = data["variants"]["certified"]["layers"] if result_file == "synth.json" \
        else data["layers"]
    return [(layer["simd"], layer["pe"]) for layer in layers]


@pytest.mark.slow
def test_a_folding_change_reruns_rtl_and_synth_on_the_new_design(tmp_path):
    statuses = lambda r: {k: v["status"] for k, v in r.items()}  # noqa: E731
    first = build.run(hardware_build(400_000), tmp_path, echo=lambda _: None)
    assert set(statuses(first).values()) == {"ran"}
    before = folding_of(tmp_path, "synth.json")
    second = build.run(hardware_build(50_000), tmp_path, echo=lambda _: None)
    assert statuses(second) == {"train": "skipped", "export": "skipped", "compile": "ran",
                                "verify": "skipped", "rtl": "ran", "synth": "ran"}
    after = folding_of(tmp_path, "synth.json")
    assert after != before
    assert folding_of(tmp_path, "sim.json") == after  # simulated design == synthesized design
    folded = ModelWrapper(str(tmp_path / layout.FOLDED_MODEL))
    expected = [(getCustomOp(n).get_nodeattr("SIMD"), getCustomOp(n).get_nodeattr("PE"))
                for n in folded.graph.node if n.name in {x["node"] for x in json.loads(
                    (tmp_path / "sim.json").read_text())["layers"]}]
    assert after == expected


def test_a_second_build_into_a_locked_directory_is_refused(tmp_path):
    cfg = tiny_config()
    with build.build_lock(tmp_path), pytest.raises(A2QFlowError, match=r"in use by pid \d+"):
        build.run(cfg, tmp_path, echo=lambda _: None)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "build.json").exists()


def test_a_build_held_by_another_process_names_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from a2qflow.build import build_lock\n"
         f"with build_lock({str(tmp_path)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(A2QFlowError, match=f"in use by pid {holder.pid}"):
            build.run(tiny_config(), tmp_path, echo=lambda _: None)
    finally:
        holder.kill()
        holder.wait()
    with build.build_lock(tmp_path):  # released when the holder died
        pass


def test_a_bad_hardware_field_is_refused_before_training(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nmodel: {arch: tfc}\ntrain: {dataset: digits}\n"
                      "hardware: {board: pynq-z2, target_fps: fast}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", str(config), "--build-dir", str(out)])
    assert result.exit_code == 2
    assert "hardware: target_fps='fast' is not valid" in result.output
    assert not out.exists()  # refused before the build directory was even made
