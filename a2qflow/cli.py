"""The `a2qflow` command line: a thin layer that fills the config dataclasses and calls stages.

Every user-fixable problem is an A2QFlowError, printed as one message with its fix and exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import typing
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import click

from a2qflow.bounds import MAX_ACC_BITS
from a2qflow.config import (
    BuildConfig,
    HardwareConfig,
    ModelSpec,
    TrainConfig,
    load_config,
)
from a2qflow.errors import A2QFlowError


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except A2QFlowError as exc:
            click.secho(f"error: {exc.problem}", fg="red", err=True)
            if exc.fix:
                click.echo(f"  fix: {exc.fix}", err=True)
            ctx.exit(2)


@click.group(cls=Group)
@click.version_option(package_name="a2qflow")
def cli() -> None:
    """a2qflow: train accumulator-aware quantized networks and compile them for FPGAs."""
    warnings.filterwarnings("ignore", module="brevitas")


# --- bounds --------------------------------------------------------------------------------------


@cli.command()
@click.option("--acc-bits", "-P", type=click.IntRange(2, MAX_ACC_BITS), required=True,
              help="accumulator width P")
@click.option("--input-bits", "-N", type=click.IntRange(1, 32), required=True)
@click.option("--input-signed", is_flag=True, help="inputs are signed (default unsigned)")
@click.option("--weight-bits", "-M", type=click.IntRange(1, 32), default=None,
              help="also print the data-type bounds for M-bit weights ...")
@click.option("--k", type=click.IntRange(1), default=None, help="... and dot products of K terms")
def bounds(acc_bits: int, input_bits: int, input_signed: bool, weight_bits: int | None,
           k: int | None) -> None:
    """Print the A2Q / A2Q+ L1 limits (and data-type bounds) for one accumulator width."""
    from a2qflow import bounds as b

    sign = "signed" if input_signed else "unsigned"
    lo, hi = b.signed_range(acc_bits)
    click.echo(f"accumulator P={acc_bits} bits: [{lo}, {hi}]; inputs {input_bits}-bit {sign}")
    a2q = b.a2q_l1_limit(acc_bits, input_bits, input_signed)
    a2qp = b.a2q_plus_l1_limit(acc_bits, input_bits)
    click.echo(f"  A2Q  limit ||q||_1 <= {a2q:.6g}   (2^(P-1)-1) * 2^(1_s-N)")
    click.echo(f"  A2Q+ limit ||q||_1 <= {a2qp:.6g}   (2^P-2) / (2^N-1), zero-centred weights")
    if not b.admits_nonzero_weights(a2q):
        click.echo("  note: the A2Q limit is below 1: every integer weight would be zero")
    if weight_bits is not None and k is not None:
        classic = b.datatype_bound_classic(k, input_bits, weight_bits)
        tight = b.datatype_bound_tight(k, input_bits, weight_bits, input_signed)
        click.echo(f"  data-type bound, K={k}, M={weight_bits}: classic P >= {classic}, "
                   f"tight P >= {tight}")


# --- train / export -------------------------------------------------------------------------------


# Help texts per dataclass field; names, types, choices and defaults come from the dataclasses.
HELP = {
    "acc_bits": "accumulator width P of the hidden layers",
    "first_acc_bits": "P of the first layer (default: unconstrained)",
    "last_acc_bits": "P of the last layer (default: unconstrained)",
    "hidden": "TFC hidden width / CNV base channels",
    "data_dir": "directory (or .npz) holding the data set",
    "ep_init": "project warm-start weights onto the L1 ball (A2Q/A2Q+)",
    "progressive": "recipe: tighten P step by step from a loose width",
    "progressive_start": "first width of the progressive schedule (default: P + 6)",
    "distill": "recipe: knowledge distillation from the float model",
    "reproject_every": "recipe: every N steps, re-project onto the integer L1 budget (0: off)",
    "reproject_settle_epochs": "final QAT epochs of each stage without re-projection",
    "axe_scales": "AXE's per-channel weight scales: fitted to the calibration data (searched "
                  "before, refitted after each layer) or brevitas's max|w| (max)",
    "HardwareConfig.acc_bits": "force every accumulator to this width (refused where a layer "
                               "needs more)",
    "board": "board name (a2qflow boards)",
    "folding": "FINN folding JSON (PE/SIMD, resType, ram_style per layer; with target_fps: "
               "applied on top of SetFolding, as in FINN's builder)",
    "target_fps": "let FINN fold for this throughput (at most one image per clock cycle)",
    "compare_acc_bits": "also build at this accumulator width, for the ratios (0: off)",
    "synth_layer_limit_s": "Yosys wall-clock limit per module, seconds (unrolled layers are slow)",
    "unrolled_generator": "adder graph of unrolled layers (SIMD=MW, PE=MH): a2qflow or da4ml",
    "backend": "rtl: a2qflow's Verilog (own), FINN's RTL (finn-rtl) wherever both exist, or "
               "per layer the smaller (auto)",
}
DATASET_DERIVED = ("in_features", "in_channels", "num_classes")  # set from the data set


def _click_type(hint: Any) -> tuple[Any, bool]:
    """(click type, is a flag) for a dataclass field's type hint (``X | None`` allowed)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = args[0]
    if isinstance(base, type) and issubclass(base, Enum):
        return click.Choice([m.value for m in base]), False
    if base is bool:
        return bool, True
    return base, False


def dataclass_options(cls: type, skip: tuple[str, ...] = (),
                      rename: dict[str, str] | None = None,
                      defaults: dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """Click options for every field of a config dataclass: one flag per setting, with the
    dataclass's own default (written once, there). ``rename`` maps field -> flag name where
    two dataclasses share a field name in one command."""
    rename, defaults = rename or {}, defaults or {}
    hints = typing.get_type_hints(cls)

    def decorate(f: Any) -> Any:
        for fld in reversed(dataclasses.fields(cls)):
            if fld.name in skip:
                continue
            flag = rename.get(fld.name, fld.name).replace("_", "-")
            dest = rename.get(fld.name, fld.name).replace("-", "_")
            kind, is_flag = _click_type(hints[fld.name])
            default = defaults.get(fld.name, fld.default)
            if isinstance(default, Enum):
                default = default.value
            names = [f"--{flag}/--no-{flag}"] if is_flag else [f"--{flag}"]
            if fld.name == "acc_bits" and cls is ModelSpec:
                names.append("-P")
            text = HELP.get(f"{cls.__name__}.{fld.name}", HELP.get(fld.name))
            f = click.option(*names, dest, type=None if is_flag else kind, default=default,
                             show_default=default is not None, help=text)(f)
        return f

    return decorate


model_options = dataclass_options(ModelSpec, skip=DATASET_DERIVED)
train_options = dataclass_options(TrainConfig)


def split_options(kwargs: dict[str, Any]) -> tuple[ModelSpec, TrainConfig, Path | None]:
    init_from = kwargs.pop("init_from", None)
    spec_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in ModelSpec.__dataclass_fields__}
    return ModelSpec(**spec_fields), TrainConfig(**kwargs), init_from


def echo_layers(layers: list[dict[str, Any]]) -> None:
    click.echo(f"  {'layer':14s} {'K':>5s} {'in':>5s} {'P':>4s} {'max L1':>7s} {'limit':>8s} "
               f"{'exact':>5s} {'zeros':>6s}")
    for r in layers:
        fmt = "-" if r["input_bits"] is None else (
            f"{'s' if r['input_signed'] else 'u'}{r['input_bits']}")
        p = "-" if r["acc_bits"] is None else str(r["acc_bits"])
        limit = "-" if r["l1_limit"] is None else f"{r['l1_limit']:.1f}"
        exact = "-" if r["exact_bits"] is None else str(r["exact_bits"])
        l1 = "-" if r["max_l1"] is None else str(r["max_l1"])
        zeros = "-" if r["sparsity"] is None else f"{r['sparsity']:.0%}"
        click.echo(f"  {r['name']:14s} {r['k']:5d} {fmt:>5s} {p:>4s} {l1:>7s} {limit:>8s} "
                   f"{exact:>5s} {zeros:>6s}")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@model_options
@train_options
@click.option("--init-from", type=click.Path(path_type=Path), default=None,
              help="warm-start from this checkpoint instead of float pre-training")
def train(build_dir: Path, **kwargs: Any) -> None:
    """Float pre-training, then A2Q/A2Q+/baseline QAT -> BUILD_DIR/checkpoint.pt, train.json."""
    from a2qflow import train as train_stage

    spec, cfg, init_from = split_options(kwargs)
    with stage_dir(build_dir, create=True):
        result = train_stage.run(spec, cfg, build_dir, progress=True, init_from=init_from)
    click.echo(f"float test accuracy {result['float_test_acc']:.2%}, "
               f"{spec.quant.value} test accuracy {result['quant_test_acc']:.2%}")
    echo_layers(result["layers"])
    for warning in result["warnings"]:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"wrote {build_dir / 'checkpoint.pt'} and {build_dir / 'train.json'}")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
def export(build_dir: Path) -> None:
    """Export BUILD_DIR/checkpoint.pt to QONNX and check it against torch."""
    from a2qflow import export as export_stage

    with stage_dir(build_dir):
        result = export_stage.run(build_dir)
    click.echo(f"QONNX == torch on {result['samples']} samples: max |diff| "
               f"{result['max_abs_diff']:.2g}, argmax agreement {result['argmax_agreement']:.0%}")
    click.echo(f"wrote {build_dir / 'model.qonnx.onnx'} and {build_dir / 'export.json'}")


@cli.command(name="import")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--samples", type=click.Path(path_type=Path), default=None,
              help=".npz with test inputs x (and labels y); default: generated on the input "
                   "quantizer's grid")
@click.option("--trained-p", "trained_p", multiple=True, metavar="LAYER=P",
              help="the P a layer was trained for (repeatable); unknown otherwise")
def import_cmd(model: Path, build_dir: Path, samples: Path | None,
               trained_p: tuple[str, ...]) -> None:
    """Import a QONNX model a2qflow did not train -> model.qonnx.onnx, import.json, samples."""
    from a2qflow import qonnx_import

    widths = qonnx_import.parse_trained_p(trained_p)
    with stage_dir(build_dir, create=True):
        result = qonnx_import.run(model, build_dir, samples, widths)
    click.echo(f"{len(result['layers'])} weight layers; samples {result['samples']['kind']}; "
               f"trained P: {result['training_target']}")
    for r in result["layers"]:
        p = "-" if r["acc_bits"] is None else str(r["acc_bits"])
        click.echo(f"  {r['name']:14s} K {r['k']:5d} in {'s' if r['input_signed'] else 'u'}"
                   f"{r['input_bits']:<2d} P {p:>3s} exact {r['exact_bits']:>2d} bits, "
                   f"zeros {r['sparsity']:.0%}")
    click.echo(f"wrote {build_dir / 'model.qonnx.onnx'}, import.json, samples.npz; next: "
               f"a2qflow compile {build_dir}")


# --- compile / verify / boards / bitstream -----------------------------------------------------


@contextlib.contextmanager
def stage_dir(build_dir: Path, create: bool = False) -> Iterator[Path]:
    """A build directory a single stage may write to, locked against a concurrent build."""
    from a2qflow.build import build_lock, check_writable

    if not create and not Path(build_dir).exists():
        raise A2QFlowError(f"build directory {build_dir} does not exist",
                           f"run `a2qflow train {build_dir}` (or `a2qflow build`) first")
    check_writable(build_dir)
    with build_lock(build_dir):
        yield Path(build_dir)


compile_options = dataclass_options(HardwareConfig,
                                    skip=("compare_acc_bits", "pnr_seed", "unrolled_generator",
                                          "synth_layer_limit_s", "backend"))


@cli.command(name="compile")
@click.argument("build_dir", type=click.Path(path_type=Path))
@compile_options
def compile_cmd(build_dir: Path, board: str, folding: str | None, target_fps: float | None,
                acc_bits: int | None) -> None:
    """FINN compile with certified accumulators -> finn/, certificate.json, estimates.json."""
    from a2qflow import compile as compile_stage
    from a2qflow.compile.certificate import certificate_table

    HardwareConfig(board=board, folding=folding, target_fps=target_fps, acc_bits=acc_bits)
    with stage_dir(build_dir):
        result = compile_stage.run(build_dir, board, folding=Path(folding) if folding else None,
                                   target_fps=target_fps, acc_bits=acc_bits)
    click.echo(certificate_table(result["certificate"]))
    est = result["estimates"]
    util = ", ".join(f"{k} {v:.1%}" for k, v in est["utilization"].items() if v is not None)
    click.echo(f"FINN estimate on {est['board']} ({est['part']}): {util}; "
               f"{est['performance']['estimated_throughput_fps']:.0f} fps")
    echo_warnings(est.get("warnings", []))
    click.echo(f"wrote {build_dir / 'finn'}/, certificate.json, estimates.json "
               f"({result['summary']['seconds']:.1f} s)")


def echo_warnings(warnings_: list[str]) -> None:
    for warning in warnings_:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
def verify(build_dir: Path) -> None:
    """Bit-exact chain (brevitas == QONNX == FINN) and worst-case overflow checks."""
    from a2qflow import verify as verify_stage

    with stage_dir(build_dir):
        result = verify_stage.run(build_dir)
    chain = result["chain"]
    torch_part = ("no torch model (imported)" if chain["brevitas_vs_finn"] is None else
                  f"brevitas vs FINN {chain['brevitas_vs_finn']['mismatches']} mismatches")
    click.echo(f"{chain['samples']} samples: {torch_part}, QONNX vs FINN "
               f"{chain['qonnx_vs_finn']['mismatches']} mismatches"
               + (f"; accuracy {chain['accuracy']:.2%}" if "accuracy" in chain else ""))
    for w in result["worst_case"]:
        nc = w["negative_control"]
        click.echo(f"  {w['layer']:12s} {w['acc_datatype']:>6s} range {w['observed_range']}: "
                   f"{w['overflows']} overflows; at {nc['acc_datatype']}: {nc['overflows']}")
    click.echo(f"wrote {build_dir / 'verify.json'}")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--max-images", type=click.IntRange(1), default=32, show_default=True,
              help="test images simulated through the whole network")
@dataclass_options(HardwareConfig, skip=("board", "folding", "target_fps", "acc_bits", "pnr_seed",
                                         "synth_layer_limit_s"))
def rtl(build_dir: Path, max_images: int, compare_acc_bits: int | None,
        unrolled_generator: str, backend: str) -> None:
    """Verilog per layer (rtl/), simulated bit-exact against FINN with Verilator."""
    from a2qflow import rtl as rtl_stage

    compare = compare_acc_bits or None
    with stage_dir(build_dir):
        result = rtl_stage.run(build_dir, max_images=max_images, compare_acc_bits=compare,
                               generator=unrolled_generator,
                               backend=HardwareConfig(backend=backend).backend)
    net = result["network"]
    click.echo(f"{net['images']} images through the network: {net['outputs']['mismatches']} "
               f"mismatches vs FINN; {net['cycles_per_image']:.0f} cycles/image "
               f"(FINN estimate {net['finn_cycle_estimate']})")
    for layer in result["layers"]:
        wc = layer["worst_case"]
        nc = wc["negative_control"]
        click.echo(f"  {layer['node']:12s} INT{layer['acc_bits']:<3d} worst cases: "
                   f"{wc['accumulator']['mismatches']} mismatches; at INT{nc['acc_bits']}: "
                   f"{nc['mismatches']} (negative control "
                   f"{'detected' if nc['detected'] else 'NOT detected'}; {layer['backend']})")
    backends = Counter(b["backend"] for b in result.get("blocks", []))
    if backends:
        click.echo("  stream blocks: " + ", ".join(f"{n} x {b}" for b, n in backends.items()))
    click.echo(f"wrote {build_dir / 'rtl'}/ and {build_dir / 'sim.json'} ({result['simulator']})")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--board", default=None, help="defaults to the board of the compile")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              envvar="A2QFLOW_SYNTH_CACHE", show_envvar=True,
              help="per-module synthesis cache (default: .cache/synth in the checkout)")
@dataclass_options(HardwareConfig, skip=tuple(f.name for f in dataclasses.fields(HardwareConfig)
                                              if f.name != "synth_layer_limit_s"))
def synth(build_dir: Path, board: str | None, cache_dir: Path | None,
          synth_layer_limit_s: float) -> None:
    """Yosys synth_xilinx of the Verilog rtl wrote: LUT/FF/CARRY/DSP/BRAM per layer and total.

    The comparison width is rtl's (--compare-acc-bits there)."""
    from a2qflow import synth as synth_stage

    limit = HardwareConfig(synth_layer_limit_s=synth_layer_limit_s).synth_layer_limit_s
    with stage_dir(build_dir):
        result = synth_stage.run(build_dir, board=board, cache_dir=cache_dir,
                                 layer_limit_s=limit, echo=click.echo)
    click.echo(synth_stage.resource_table(result))
    click.echo(f"wrote {build_dir / 'synth.json'} ({result['seconds']:.1f} s)")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--board", default=None, help="an ECP5 board (default: the board of the compile)")
@click.option("--seed", type=click.IntRange(0), default=HardwareConfig.pnr_seed,
              show_default=True, help="nextpnr placement seed (recorded)")
@click.option("--compare-acc-bits", type=click.IntRange(0, MAX_ACC_BITS), default=0,
              show_default=True, help="also place rtl's variant at this width (0: off)")
@click.option("--clock-mhz", type=float, default=None, help="default: the board's clock")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="per-variant P&R cache (default: .cache/pnr in the checkout)")
def pnr(build_dir: Path, board: str | None, seed: int, compare_acc_bits: int,
        clock_mhz: float | None, cache_dir: Path | None) -> None:
    """ECP5 place and route (Yosys synth_ecp5 + nextpnr-ecp5): routed cells, Fmax, design.bit."""
    from a2qflow import pnr as pnr_stage

    with stage_dir(build_dir):
        result = pnr_stage.run(build_dir, seed=seed, compare_acc_bits=compare_acc_bits or None,
                               board=board, clock_mhz=clock_mhz, cache_dir=cache_dir)
    click.echo(pnr_stage.pnr_table(result))
    if result["timing_met"] is False:
        click.secho(f"warning: timing FAILED at {result['target_mhz']:g} MHz (Fmax "
                    f"{result['fmax_mhz']:.1f} MHz)", fg="yellow", err=True)
    click.echo(f"wrote {build_dir / 'pnr.json'} and {build_dir / 'design.bit'}")


@cli.command()
def boards() -> None:
    """List the board catalogue."""
    from a2qflow.boards import load_boards

    for b in load_boards():
        r = b.resources
        click.echo(f"{b.name:14s} {b.part:22s} {b.family.value:17s} {b.shell_flow.value:12s} "
                   f"LUT {r['LUT']:>8d} FF {r['FF']:>8d} BRAM18 {r['BRAM18']:>5d} "
                   f"URAM {r['URAM']:>5d} DSP {r['DSP']:>6d} {b.clock_ns:g} ns")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--board", default=None, help="defaults to the board of the compile")
def bitstream(build_dir: Path, board: str | None) -> None:
    """Vivado path: FINN's HLS synthesis, stitched IP, bitfile; needs Vivado + Vitis HLS."""
    from a2qflow import bitstream as bitstream_stage

    with stage_dir(build_dir):
        synth = bitstream_stage.run(build_dir, board)
    click.echo(f"wrote {build_dir / 'synth.json'} ({synth['tool']})")


# --- build / sweep -------------------------------------------------------------------------------


hardware_options = dataclass_options(HardwareConfig, rename={"acc_bits": "force_acc_bits"})


def qonnx_trained_p(pairs: tuple[str, ...]) -> dict[str, int]:
    from a2qflow.qonnx_import import parse_trained_p

    return parse_trained_p(pairs)


def build_config_from(ctx: click.Context, config: Path | None, name: str | None,
                      stages: str | None, flags: dict[str, Any],
                      import_settings: dict[str, Any] | None = None):
    """A build config from CONFIG (YAML) with the explicitly given flags on top, or from the
    flags alone when there is no CONFIG. Validated like a config file."""
    from click.core import ParameterSource

    import_settings = import_settings or {}
    if flags.get("compare_acc_bits") == 0:
        flags["compare_acc_bits"] = None
    if config is None:
        data: dict[str, Any] = {"name": "build", "model": {}, "train": {}, "hardware": {}}
        chosen = flags
    else:
        data = load_config(config).to_dict()
        chosen = {k: v for k, v in flags.items()
                  if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
    hardware_fields = HardwareConfig.__dataclass_fields__
    for key, value in chosen.items():
        if key == "force_acc_bits":
            data["hardware"]["acc_bits"] = value
        elif key in ModelSpec.__dataclass_fields__:
            data["model"][key] = value
        elif key in hardware_fields:
            data["hardware"][key] = value
        else:
            data["train"][key] = value
    if name:
        data["name"] = name
    if import_settings.get("model"):
        data["import"] = {"model": str(import_settings["model"]),
                          "samples": import_settings.get("samples"),
                          "trained_p": qonnx_trained_p(import_settings.get("trained_p", ()))}
        data["stages"] = None  # the stages of an imported build, unless --stages says
    if stages:
        data["stages"] = stages.split(",")
    return BuildConfig.from_dict(data, str(config or "command line"))


@cli.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--build-dir", type=click.Path(path_type=Path), default=None,
              help="default: builds/<name>")
@click.option("--name", default=None, help="build name (default: the config's, or 'build')")
@click.option("--stages", default=None, help="comma-separated subset, e.g. train,export")
@click.option("--model", "model_file", type=click.Path(path_type=Path), default=None,
              help="build from this QONNX file (a2qflow import) instead of training")
@click.option("--samples", type=click.Path(path_type=Path), default=None,
              help="with --model: test inputs (.npz with x, optional y)")
@click.option("--trained-p", "trained_p", multiple=True, metavar="LAYER=P",
              help="with --model: the P a layer was trained for (repeatable)")
@model_options
@train_options
@hardware_options
@click.pass_context
def build(ctx: click.Context, config: Path | None, build_dir: Path | None, name: str | None,
          stages: str | None, model_file: Path | None, samples: Path | None,
          trained_p: tuple[str, ...], **flags: Any) -> None:
    """Run every stage in order, skipping those already up to date.

    Settings come from CONFIG (YAML; see configs/) with any flag given here on top, or from
    the flags alone.
    """
    from a2qflow import build as build_stage

    cfg = build_config_from(ctx, config, name, stages, flags,
                            {"model": model_file, "samples": str(samples) if samples else None,
                             "trained_p": trained_p})
    build_dir = build_dir or Path("builds") / cfg.name
    build_stage.run(cfg, build_dir, echo=click.echo)
    click.echo(f"build directory: {build_dir}")


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--acc-bits", default="32,16,14,12,10", show_default=True)
@click.option("--quant", "quants", default="a2q,a2q+", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="sweep directory (default: builds/<config name>-sweep)")
@click.option("--scheduler", default=None, help="address of an existing Dask scheduler")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="local cluster size (ignored with --scheduler)")
@click.option("--data-dir", default=None, help="override train.data_dir of the config")
@click.option("--stages", default=None, help="comma-separated subset of stages per point")
@click.pass_context
def sweep(ctx: click.Context, config: Path, acc_bits: str, quants: str, out: Path | None,
          scheduler: str | None, workers: int, data_dir: str | None,
          stages: str | None) -> None:
    """Build CONFIG for every (quantizer, accumulator width) as independent Dask jobs."""
    from a2qflow import sweep as sweep_stage

    cfg = build_config_from(ctx, config, None, stages, {"data_dir": data_dir})
    try:
        widths = [int(v) for v in acc_bits.split(",")]
    except ValueError:
        raise A2QFlowError(f"--acc-bits {acc_bits!r} is not a list of integers",
                           "write e.g. --acc-bits 32,16,12") from None
    out = out or Path("builds") / f"{cfg.name}-sweep"
    result = sweep_stage.run(cfg, widths, quants.split(","), out, scheduler=scheduler,
                             workers=workers, echo=click.echo)
    failed = [p["name"] for p in result["points"] if p["status"] != "ok"]
    click.echo(f"sweep directory: {out} ({len(result['points']) - len(failed)} ok, "
               f"{len(failed)} failed)")


# --- demo ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where report.html/.md and the plots go (default: the first DIR)")
def report(dirs: tuple[Path, ...], out: Path | None) -> None:
    """Tables and plots for builds and sweeps: report.html, report.md, *.png."""
    from a2qflow import report as report_stage

    result = report_stage.run(list(dirs), out)
    click.echo(f"wrote {result['html']} and {result['markdown']} "
               f"({len(result['figures'])} plots, {result['builds']} builds)")


@cli.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
def compare(a: Path, b: Path) -> None:
    """Two builds side by side (accuracy, resources, per-layer widths)."""
    from a2qflow import report as report_stage

    click.echo(report_stage.compare(a, b))


# --- demo ---------------------------------------------------------------------------------------

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


@cli.command()
@click.option("--build-dir", type=click.Path(path_type=Path), default=Path("build/demo"),
              show_default=True)
@click.option("--board", default=None,
              help="another board (an ECP5 board, e.g. ulx3s-85f, adds place and route)")
def demo(build_dir: Path, board: str | None) -> None:
    """The default job: configs/demo.yaml (TFC W4A4, A2Q+, P=12, digits) through every stage."""
    import dataclasses
    import json

    from a2qflow import build as build_stage
    from a2qflow import report as report_stage
    from a2qflow.compile.certificate import certificate_table
    from a2qflow.synth import resource_table

    cfg = load_config(DEMO_CONFIG)
    if board is not None:
        cfg = dataclasses.replace(cfg, stages=None,
                                  hardware=dataclasses.replace(cfg.hardware, board=board))
    build_stage.run(cfg, build_dir, echo=click.echo)
    train_result = json.loads((build_dir / "train.json").read_text())
    click.echo(f"\nfloat test accuracy {train_result['float_test_acc']:.2%}, A2Q+ P="
               f"{cfg.model.acc_bits} test accuracy {train_result['quant_test_acc']:.2%}\n")
    cert = json.loads((build_dir / "certificate.json").read_text())
    click.echo("overflow certificate (bits):")
    click.echo(certificate_table(cert))
    verify_result = json.loads((build_dir / "verify.json").read_text())
    chain = verify_result["chain"]
    click.echo(f"\nverify: {chain['samples']} test images bit-exact (brevitas == QONNX == FINN)"
               f", worst-case vectors of {len(verify_result['worst_case'])} layers within their "
               f"certified widths and overflowing one bit narrower: "
               f"{'PASS' if verify_result['ok'] else 'FAIL'}")
    sim = json.loads((build_dir / "sim.json").read_text())
    net = sim["network"]
    detected = all(layer["worst_case"]["negative_control"]["detected"] for layer in sim["layers"])
    click.echo(f"rtl: own Verilog, {net['images']} images through the whole network in "
               f"Verilator: {net['outputs']['mismatches']} mismatches vs FINN; "
               f"{net['cycles_per_image']:.0f} cycles/image (FINN estimate "
               f"{net['finn_cycle_estimate']}); one-bit-narrower controls "
               f"{'all detected' if detected else 'NOT all detected'}\n")
    click.echo(resource_table(json.loads((build_dir / "synth.json").read_text())))
    if (build_dir / "pnr.json").is_file():
        from a2qflow.pnr import pnr_table

        click.echo("\n" + pnr_table(json.loads((build_dir / "pnr.json").read_text())))
    rep = report_stage.run([build_dir])
    click.echo(f"\nreport: {rep['html']}")
    click.echo(f"artifacts in {build_dir.resolve()}")


def main() -> None:
    cli(prog_name="a2qflow")


if __name__ == "__main__":
    sys.exit(main())
