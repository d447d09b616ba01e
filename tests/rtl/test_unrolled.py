"""Fully unrolled MVAUs (SIMD = MW, PE = MH): both generators, Verilator, Yosys, a network."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2qflow import bounds, rtl
from a2qflow.errors import A2QFlowError
from a2qflow.rtl.design import MVAULayer
from a2qflow.rtl.generate import render_layer
from a2qflow.rtl.sim import Group, Port, simulate
from a2qflow.rtl.unrolled import GENERATORS, build_netlist, partition
from a2qflow.tools.verilator import Verilator
from a2qflow.tools.yosys import Yosys

pytest.importorskip("da4ml")


def unrolled_layer(mw: int, mh: int, signed: bool, act_val: int, zeros: float = 0.5,
                   seed: int = 3) -> MVAULayer:
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, size=(mh, mw))
    w[rng.random(w.shape) < zeros] = 0
    w[1] = 0  # an all-zero channel: a constant, never narrowed
    lo, hi = bounds.input_range(4, signed)
    r = bounds.exact_accumulator_range(w, lo, hi)
    thr = np.sort(rng.integers(r.lo.min() - 4, r.hi.max() + 4, size=(mh, 15)), axis=1)
    reg = max(r.bits, bounds.signed_bits_for_range(thr.min(), thr.max()))
    return MVAULayer("MVAU_u", mw, mh, mw, mh, 4, signed, 4, r.bits, r.bits, reg, 4,
                     act_val < 0, act_val, w, thr)


@given(w=st.lists(st.lists(st.integers(-7, 7), min_size=5, max_size=5), min_size=1,
                  max_size=4),
       signed=st.booleans(), generator=st.sampled_from(GENERATORS))
@settings(max_examples=40, deadline=None)
def test_netlist_computes_the_weights_at_exact_widths(w, signed, generator):
    w = np.array(w)
    net = build_netlist(w, 3, signed, generator)
    lo, hi = bounds.input_range(3, signed)
    x_max, x_min = bounds.worst_case_inputs(w, lo, hi)
    x = np.concatenate([x_max, x_min, np.random.default_rng(0).integers(lo, hi + 1, (20, 5))])
    assert np.array_equal(net.evaluate(x), x @ w.T)
    assert net.channel_bits == bounds.channel_exact_bits(w, 3, signed)
    assert net.nonzero_weights == np.count_nonzero(w)
    for node in net.nodes:  # every node exactly as wide as its partial sum's range
        assert node.bits == bounds.signed_bits_for_range(node.lo, node.hi)
    if generator == "a2qflow":  # a tree per channel: one adder fewer than its non-zeros,
        # over products built once per input and odd magnitude above 1 (x*3, x*5, x*7)
        odd = {(i, _odd_part(int(q))) for (_, i), q in np.ndenumerate(w) if q}
        assert net.product_leaves == sum(1 for _, m in odd if m > 1)
        assert net.adders == sum(max(0, int(np.count_nonzero(r)) - 1) for r in w)
    parts = partition(net, nodes_per_group=3)  # every node in exactly one module
    placed = [n.name for n in parts.shared] + [n.name for _, ns in parts.groups for n in ns]
    used = {n.name for n in net.nodes} - _unreachable(net)
    assert sorted(placed) == sorted(used)
    assert [c for chans, _ in parts.groups for c in chans] == list(range(len(w)))


def _odd_part(q: int) -> int:
    m = abs(q)
    while m % 2 == 0:
        m //= 2
    return m


def _unreachable(net) -> set[str]:
    by_name = {n.name: n for n in net.nodes}
    seen, todo = set(), [r.node for r in net.roots if r.node in by_name]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [s for _, s, _ in by_name[name].terms if s in by_name]
    return set(by_name) - seen


def test_unknown_generator_is_refused():
    with pytest.raises(A2QFlowError, match="generator"):
        build_netlist(np.ones((2, 2), dtype=int), 4, False, "hls4ml")


@pytest.mark.parametrize("signed,act_val", [(False, 0), (True, -8)])
def test_both_generators_bit_identical_in_verilator(tmp_path, signed, act_val):
    layer = unrolled_layer(16, 8, signed, act_val)
    lo, hi = bounds.input_range(4, signed)
    rng = np.random.default_rng(7)
    x_max, x_min = bounds.worst_case_inputs(layer.weights, lo, hi)
    x = np.concatenate([rng.integers(lo, hi + 1, size=(48, layer.mw)), x_max, x_min])
    accs = x @ layer.weights.T
    ref = (accs[:, :, None] >= layer.thresholds[None]).sum(-1) + act_val
    src, groups = {}, []
    inp = Port(layer.mw, 4, signed, layer.mw)
    for g in GENERATORS:
        lay = dataclasses.replace(layer, generator=g)
        probe = lay.accumulator_probe(layer.acc_bits)
        src[f"t_{g}.v"] = render_layer(lay, f"t_{g}")
        src[f"p_{g}.v"] = render_layer(probe, f"p_{g}")
        src[f"n_{g}.v"] = render_layer(dataclasses.replace(probe, root_trim=1), f"n_{g}")
        groups += [
            Group(f"thr/{g}", f"t_{g}", inp, Port(layer.mh, 4, act_val < 0, layer.mh), x, ref,
                  stress=True),
            Group(f"acc/{g}", f"p_{g}", inp, Port(layer.mh, layer.acc_bits, True, layer.mh),
                  x, accs),
            Group(f"narrow/{g}", f"n_{g}", inp, Port(layer.mh, layer.acc_bits, True, layer.mh),
                  x, accs)]
    results, _ = simulate(groups, src, tmp_path, Verilator())
    out = {g.label: r for g, r in zip(groups, results, strict=True)}
    for g in groups:
        if not g.label.startswith("narrow"):
            assert out[g.label].compare(g.expected)["mismatches"] == 0, g.label
    # bit-identical to each other, the negative controls included
    for tag in ("thr", "acc", "narrow"):
        assert np.array_equal(out[f"{tag}/a2qflow"].outputs, out[f"{tag}/da4ml"].outputs)
    # one vector per clock at full rate
    assert np.all(np.diff(out["acc/a2qflow"].cycles) == 1)
    # per channel: one bit narrower overflows on that channel's own worst case
    n, bits = len(x) - 2 * layer.mh, layer.channel_bits
    narrow = out["narrow/a2qflow"].outputs
    for c in range(layer.mh):
        hit = narrow[n + c, c] != accs[n + c, c] or narrow[n + layer.mh + c, c] != accs[
            n + layer.mh + c, c]
        assert hit == (bits[c] > 1), c


def _luts(tmp_path, layer: MVAULayer, tag: str) -> dict[str, int]:
    text = render_layer(layer, f"u_{tag}")
    (tmp_path / f"{tag}.v").write_text(text)
    return Yosys().synth(tmp_path / f"{tag}.v", f"u_{tag}", "xc7", tmp_path / tag,
                         nodsp=True).resources


def test_zero_weights_cost_nothing_in_yosys(tmp_path):
    dense = unrolled_layer(16, 8, False, 0, zeros=0.0)
    w = dense.weights.copy()
    w[:, 4:] = 0  # three quarters of the weights zeroed
    sparse = dataclasses.replace(dense, weights=w)
    r_dense, r_sparse = _luts(tmp_path, dense, "dense"), _luts(tmp_path, sparse, "sparse")
    assert r_sparse["LUT"] < 0.5 * r_dense["LUT"], (r_dense, r_sparse)
    assert r_sparse["CARRY"] < 0.5 * r_dense["CARRY"], (r_dense, r_sparse)


def test_partitions_sum_to_the_flat_layer_in_yosys(tmp_path, monkeypatch):
    from a2qflow.rtl import generate, unrolled
    from a2qflow.synth import synth_cached, synth_partitions

    monkeypatch.setattr(unrolled, "PARTITION_NODES", 24)
    layer = unrolled_layer(16, 8, False, 0, zeros=0.3)
    text, facts = generate.render_unrolled(layer, "u_p")
    assert len(facts["partitions"]) > 2  # the shared products and several channel groups
    flat = synth_cached(text, "u_p", "xc7", Yosys(), True, tmp_path)
    parts = synth_partitions(text, "u_p", facts["partitions"], "xc7", Yosys(), True, tmp_path)
    assert len(parts["partitions"]) == len(facts["partitions"])
    assert parts["resources"]["FF"] == flat["resources"]["FF"]  # the top adds no cells
    assert abs(parts["resources"]["LUT"] - flat["resources"]["LUT"]) <= 0.15 * flat[
        "resources"]["LUT"], (parts["resources"], flat["resources"])


FOLDING_NAMES = ("MVAU_hls_0", "MVAU_hls_1", "MVAU_hls_2", "MVAU_rtl_0")


def unrolled_folding(dims: list[tuple[int, int]]) -> dict[str, dict[str, object]]:
    """FINN folding with SIMD = MW and PE = MH for TFC's four MVAUs (FINN's RTL MVU, the
    last one, keeps resType auto: its LUT variant does not generate)."""
    fold: dict[str, dict[str, object]] = {"Defaults": {}}
    for name, (mw, mh) in zip(FOLDING_NAMES, dims, strict=True):
        rtl_mvu = "rtl" in name
        fold[name] = {"PE": mh, "SIMD": mw, "ram_style": "auto",
                      "mem_mode": "internal_decoupled" if rtl_mvu else "internal_embedded",
                      "resType": "auto" if rtl_mvu else "lut"}
    return fold


@pytest.fixture(scope="session")
def unrolled_small(trained_build, tmp_path_factory):
    """A2Q+ TFC hidden=16 on digits, every layer unrolled, through verify and rtl."""
    from a2qflow import compile as compile_stage
    from a2qflow import verify

    src = trained_build(quant="a2q+", acc_bits=12, hidden=16)
    dst = tmp_path_factory.mktemp("unrolled_small")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    folding = dst / "unrolled.json"
    folding.write_text(json.dumps(unrolled_folding([(64, 16), (16, 16), (16, 16), (16, 10)])))
    compile_stage.run(dst, "pynq-z1", folding=folding)
    verify.run(dst)
    rtl.run(dst, max_images=16, compare_acc_bits=32)
    return dst


@pytest.mark.slow
def test_unrolled_network_bit_exact_with_per_channel_controls(unrolled_small):
    saved = json.loads((unrolled_small / "sim.json").read_text())
    assert saved["ok"]
    assert saved["network"]["outputs"] == {"compared": 160, "mismatches": 0,
                                           "first_mismatch": None}
    assert saved["network"]["cycles_per_image"] == 1.0
    cert = json.loads((unrolled_small / "certificate.json").read_text())["layers"]
    for layer, entry in zip(saved["layers"], cert, strict=True):
        assert layer["style"] == "unrolled"
        wc = layer["worst_case"]
        assert wc["layer_output"]["mismatches"] == 0
        assert wc["accumulator"]["mismatches"] == 0
        ctl = wc["negative_control"]
        assert ctl["per_channel"] and ctl["detected"]
        assert ctl["channels_detected"] == ctl["channels_controlled"] > 0
        assert ctl["channel_bits"] == entry["channel_exact_bits"]
        assert max(entry["channel_exact_bits"]) == entry["exact_bits"]
    design = json.loads((unrolled_small / "rtl" / "design.json").read_text())
    for variant, widths in (("certified", "exact"), ("acc32", "uniform")):
        for rec in [m for m in design["variants"][variant]["modules"] if m["kind"] == "mvau"]:
            assert rec["style"] == "unrolled" and rec["generator"] == "a2qflow"
            assert rec["widths"] == widths and not rec["products_in_dsp"]
            assert 0 < rec["nonzero_weights"] <= rec["weights"]
            assert rec["adders"] > 0
    certified = [m for m in design["variants"]["certified"]["modules"] if m["kind"] == "mvau"]
    assert [m["channel_bits"] for m in certified] == [e["channel_exact_bits"] for e in cert]


@pytest.mark.slow
def test_da4ml_generator_is_recorded_per_layer(unrolled_small, copy_build):
    build = copy_build(unrolled_small)
    report = rtl.run(build, max_images=4, generator="da4ml")
    assert report["ok"]
    design = json.loads((build / "rtl" / "design.json").read_text())
    recs = [m for m in design["variants"]["certified"]["modules"] if m["kind"] == "mvau"]
    assert {m["generator"] for m in recs} == {"da4ml"}
    assert all(m["generator_label"].startswith("da4ml ") for m in recs)


def test_unknown_generator_is_refused_before_work(tmp_path):
    with pytest.raises(A2QFlowError, match="generator"):
        rtl.run(tmp_path, generator="nope")
