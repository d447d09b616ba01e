"""The command line: thin over the library, one clear message and exit 2 on bad input."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from a2qflow.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_bounds_prints_both_limits():
    result = run("bounds", "--acc-bits", "16", "--input-bits", "8")
    assert result.exit_code == 0
    assert "A2Q  limit ||q||_1 <= 127.996" in result.output
    assert "A2Q+ limit ||q||_1 <= 256.996" in result.output


def test_bounds_signed_inputs_double_the_a2q_limit():
    result = run("bounds", "-P", "16", "-N", "8", "--input-signed", "-M", "4", "--k", "784")
    assert "A2Q  limit ||q||_1 <= 255.992" in result.output
    assert "classic P >= 22" in result.output


def test_infeasible_width_exits_2_with_fix(tmp_path):
    result = run("train", str(tmp_path / "b"), "--quant", "a2q", "--acc-bits", "5")
    assert result.exit_code == 2
    assert "infeasible" in result.output and "fix: use --acc-bits >= 6" in result.output
    assert "Traceback" not in result.output


def test_missing_data_set_exits_2_naming_where_it_looked(tmp_path):
    result = run("train", str(tmp_path / "b"), "--dataset", "mnist", "--data-dir",
                 str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "nowhere" in result.output and "fix:" in result.output


def test_unknown_model_is_refused():
    result = run("train", "b", "--arch", "resnet")
    assert result.exit_code == 2
    assert "resnet" in result.output


def test_export_of_empty_directory_names_the_stage(tmp_path):
    result = run("export", str(tmp_path))
    assert result.exit_code == 2
    assert "run `a2qflow train` first" in result.output


def test_build_from_flags_alone_and_flags_over_a_config(tmp_path):
    import json

    out = tmp_path / "flags"
    result = run("build", "--build-dir", str(out), "--stages", "train", "--quant", "a2q",
                 "-P", "10", "--hidden", "16", "--float-epochs", "1", "--qat-epochs", "1",
                 "--board", "zcu104")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "build.json").read_text())
    assert saved["model"]["quant"] == "a2q" and saved["model"]["acc_bits"] == 10
    assert saved["hardware"]["board"] == "zcu104"
    # a config file, with one explicit flag on top: only that flag changes
    over = tmp_path / "over"
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    result = run("build", str(demo), "--build-dir", str(over), "--stages", "train",
                 "-P", "10", "--float-epochs", "1", "--qat-epochs", "1")
    assert result.exit_code == 0, result.output
    saved = json.loads((over / "build.json").read_text())
    assert saved["model"]["acc_bits"] == 10 and saved["model"]["quant"] == "a2q+"
    assert saved["hardware"]["target_fps"] == 100000


def test_build_flag_with_a_bad_value_names_the_field(tmp_path):
    result = run("build", "--build-dir", str(tmp_path), "--board", "pynq-z2", "-P", "40")
    assert result.exit_code == 2
    assert "acc_bits=40 is not valid" in result.output
