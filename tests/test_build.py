"""`a2qflow build`: typed config, stages in order, skip what is up to date, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from a2qflow import build
from a2qflow.build import BuildConfig, load_config
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
    ({"model": {"widht": 3}}, "unknown model field"),
    ({"train": {"epochs": 3}}, r"train: unknown field 'epochs'(?s:.*)float_epochs"),
    ({"hardware": {"board": 3, "clock": 5}}, "unknown field 'clock'"),
    ({"stages": ["train", "bitstream"]}, "unknown stage 'bitstream'"),
    ({"model": {"acc_bits": 40}}, r"acc_bits=40 is not valid(?s:.*)2 to 32"),
    ({"bogus": 1}, "unknown field 'bogus'"),
])
def test_bad_config_names_the_field_and_allowed_values(data, message):
    with pytest.raises(A2QFlowError, match=message):
        BuildConfig.from_dict(data)


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


def test_code_hash_follows_the_stage_sources(tmp_path, monkeypatch):
    pkg = tmp_path / "a2qflow"
    (pkg / "rtl").mkdir(parents=True)
    (tmp_path / "hls").mkdir()
    (pkg / "rtl" / "gen.py").write_text("x = 1\n")
    (tmp_path / "hls" / "mvau.v.j2").write_text("module m; endmodule\n")
    monkeypatch.setattr(build, "PACKAGE_ROOT", pkg)
    before = build.code_hash(("rtl", "../hls"))
    (tmp_path / "hls" / "mvau.v.j2").write_text("module m2; endmodule\n")
    after = build.code_hash(("rtl", "../hls"))
    assert before != after
    assert build.code_hash(("rtl",)) == build.code_hash(("rtl",))
