"""The export's per-pass checks: the raw interpreter, and every check failing on its own.

Models are built directly (no training): a digits conv block with avgpool, BatchNorm (some
negative gammas) and a bias, so that every pass of ``lower.PASSES`` has real work, with
running statistics measured on the data and hand-set BN affine parameters and biases.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from qsnn_testutil import ROOT, TINY

from qsnn import config
from qsnn.errors import QsnnError
from qsnn.export import golden, lower, pass_checks, raw_exec, runner
from qsnn.export.ir import LIF, InputEncoder, Node, Readout
from qsnn.export.lower import BiasAdd, FloatLIF, ScaledWeight
from qsnn.export.raw_exec import RawTrace
from qsnn.train import lif as train_lif
from qsnn.train.model import QSNN
from qsnn.train.runner import build_model, load_data

CONV = ["model.layers=[conv4k3, avgpool2, bn, lif, fc10, lif]", "model.per_channel=true",
        "model.bias=true", "data.time_steps=8", "data.max_test=48"]
PASS_NAMES = [name for name, _ in lower.PASSES]


def build(overrides: list[str], seed: int = 0):
    """A hardware-aware model with BN running statistics measured on the training images,
    hand-set BN gammas (half negative) and betas, and random biases; eval mode."""
    cfg = config.apply_overrides(config.load(ROOT / "configs/digits.yaml"), TINY + overrides)
    data = load_data(cfg)
    torch.manual_seed(seed)
    model = build_model(cfg, data)
    gen = torch.Generator().manual_seed(seed)
    for block in model.blocks:
        if block.bn is not None:
            block.bn.momentum = 1.0  # running statistics = this batch's
    model.train()
    with torch.no_grad():
        model(data.train.x[:64])
        for block in model.blocks:
            n = block.spec.out_ch
            if block.bn is not None:
                sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
                block.bn.weight.copy_(sign * (0.5 + torch.rand(n, generator=gen)))
                block.bn.bias.copy_(torch.rand(n, generator=gen) - 0.6)
            if block.bias is not None:
                low = -0.2 if block.bn is not None else 0.0
                block.bias.copy_(low + 0.4 * torch.rand(n, generator=gen))
    model.eval()
    return cfg, data, model


@pytest.fixture(scope="module")
def conv():
    return build(CONV)


def raw_graph(cfg, data, model: QSNN) -> tuple[InputEncoder, list]:
    return lower.lower_model(model, cfg.name, data.input_shape, cfg.data.rate_seed)


def trained(model: QSNN, x: torch.Tensor) -> RawTrace:
    return pass_checks.trained_trace(model, x, [f"lif{i}" for i in range(len(model.blocks))])


def assert_same_traces(got: RawTrace, want: RawTrace) -> None:
    assert pass_checks.first_difference(want, got, 0) is None
    for g, w in zip(got.spikes, want.spikes, strict=True):  # and independently of it:
        assert torch.equal(g.to(torch.float32), w.to(torch.float32))
    for g, w in zip(got.membranes, want.membranes, strict=True):
        assert torch.equal(g.double(), w.double())


# -- the raw interpreter -------------------------------------------------------------------
def test_conv_model_gives_every_pass_work(conv) -> None:
    cfg, data, model = conv
    _, nodes = raw_graph(cfg, data, model)
    kinds = [type(n).__name__ for n in nodes]
    assert kinds == ["ScaledWeight", "AvgPool", "BatchNorm", "BiasAdd", "FloatLIF", "Flatten",
                     "ScaledWeight", "BiasAdd", "FloatLIF", "Readout"]
    graphs = pass_checks.pass_graphs(nodes)
    for (_, before), (name, after) in zip(graphs[:-1], graphs[1:], strict=True):
        assert pass_checks._changed(before, after), f"{name} has nothing to do"
    spikes = trained(model, data.test.x).spikes
    assert all(0.05 < float(s.float().mean()) < 0.5 for s in spikes)  # both layers active


@pytest.mark.parametrize("overrides", [
    CONV,
    ["data.encoding=rate", "model.bias=true", "model.leak=shift", "model.reset=zero"],
    ["model.layers=[fc32, bn, lif, fc10, lif]", "model.reset=none", "model.threshold=0.6"],
], ids=["direct-conv-bn-bias", "rate-mlp-shift-zero", "mlp-bn-no-reset"])
def test_raw_interpreter_equals_the_trained_model(overrides) -> None:
    cfg, data, model = build(overrides)
    enc, nodes = raw_graph(cfg, data, model)
    x = data.test.x
    got = raw_exec.run(enc, nodes, cfg.data.time_steps, x)
    assert_same_traces(got, trained(model, x))
    assert sum(int(s.sum()) for s in got.spikes) > 0


def test_raw_interpreter_equals_the_trained_model_on_events() -> None:
    cfg = config.apply_overrides(config.load(ROOT / "configs/digits.yaml"),
                                 TINY + ["data.encoding=events", "model.threshold=0.3",
                                         "model.layers=[conv4k3, lif, fc10, lif]"])
    torch.manual_seed(1)
    model = QSNN(cfg, (2, 6, 6), 10, 1).eval()
    x = (torch.rand(16, cfg.data.time_steps, 2, 6, 6) < 0.3).to(torch.int64)
    enc, nodes = lower.lower_model(model, cfg.name, (2, 6, 6))
    got = raw_exec.run(enc, nodes, cfg.data.time_steps, x)
    assert_same_traces(got, trained(model, x))
    assert sum(int(s.sum()) for s in got.spikes) > 0


def test_every_partly_folded_graph_runs_as_it_is(conv) -> None:
    cfg, data, model = conv
    enc, nodes = raw_graph(cfg, data, model)
    want = trained(model, data.test.x)
    for _, g in pass_checks.pass_graphs(nodes):
        assert_same_traces(raw_exec.run(enc, g, cfg.data.time_steps, data.test.x), want)


def test_raw_interpreter_refuses_graphs_no_training_order_gives(conv) -> None:
    cfg, data, model = conv
    enc, nodes = raw_graph(cfg, data, model)
    x, steps = data.test.x[:2], cfg.data.time_steps
    folded = lower.apply(lower.fold_weight_scale, nodes)
    twice = [nodes[0]] + folded[1:]  # ScaledWeight kept, its scale also folded
    with pytest.raises(QsnnError, match="'conv0' has a weight scale that is also folded"):
        raw_exec.run(enc, twice, steps, x)
    no_unit = [folded[0]] + nodes[1:]  # integer conv, nothing folded into lif0
    with pytest.raises(QsnnError, match="'pool0' needs the block's unit"):
        raw_exec.run(enc, no_unit, steps, x)
    done = pass_checks.pass_graphs(nodes)[-1][1]
    stray = done[:2] + [BiasAdd("bias0", np.ones(4, np.float32))] + done[2:]
    with pytest.raises(QsnnError, match="integer LIF 'lif0' follows unfolded annotations"):
        raw_exec.run(enc, stray, steps, x)


# -- locating differences ------------------------------------------------------------------
def _trace(spikes: list[np.ndarray], mems: list[np.ndarray]) -> RawTrace:
    return RawTrace([f"lif{i}" for i in range(len(spikes))],
                    [torch.as_tensor(s, dtype=torch.int8) for s in spikes],
                    [torch.as_tensor(m, dtype=torch.int64) for m in mems], torch.zeros(0))


def test_first_difference_is_lowest_image_then_layer_then_step() -> None:
    rng = np.random.default_rng(0)
    s = [rng.integers(0, 2, (5, 6, 3)), rng.integers(0, 2, (5, 6, 4))]
    m = [rng.integers(-9, 9, (5, 6, 3)), rng.integers(-9, 9, (5, 6, 4))]
    want = _trace(s, m)
    assert pass_checks.first_difference(want, _trace(s, m), 0) is None
    s2 = [a.copy() for a in s]
    m2 = [a.copy() for a in m]
    s2[0][4, 5, 0] ^= 1  # layer 0, image 5, step 4
    m2[1][3, 2, 1] += 1  # layer 1, image 2, step 3 (membrane only)
    m2[1][1, 4, 0] += 1  # layer 1, image 4, step 1
    got = pass_checks.first_difference(want, _trace(s2, m2), 100)
    assert got == pass_checks.Difference(102, "lif1", 3, "membranes")
    s2[0][2, 2, 2] ^= 1  # the same image, an earlier layer, a later step wins
    got = pass_checks.first_difference(want, _trace(s2, m2), 0)
    assert got == pass_checks.Difference(2, "lif0", 2, "spikes")


def test_trained_membranes_compare_exactly_in_float64() -> None:
    big = 2**24 + 1  # not a float32: a float32 compare would call 2^24 equal to it
    want = RawTrace(["lif0"], [torch.zeros(1, 1, 1, dtype=torch.int8)],
                    [torch.full((1, 1, 1), float(2**24))], torch.zeros(0))
    got = _trace([np.zeros((1, 1, 1))], [np.full((1, 1, 1), big)])
    assert pass_checks.first_difference(want, got, 0) == pass_checks.Difference(
        0, "lif0", 0, "membranes")


# -- every check fails on its own ----------------------------------------------------------
def wrong_weight_scale(seg):
    """fold_weight_scale forgetting the input scale (1/pixel_max of direct input)."""
    seg = [dataclasses.replace(n, in_scale=1.0) if isinstance(n, ScaledWeight) else n
           for n in seg]
    return lower.fold_weight_scale(seg)


def pool_by_k(seg):
    """avgpool_to_sumpool dividing the unit by K instead of K^2."""
    ks = [n.kernel for n in seg if isinstance(n, lower.AvgPool)]
    out = lower.avgpool_to_sumpool(seg)
    if ks and not any(isinstance(n, lower.AvgPool) for n in out):
        out = lower._with_lif(out, unit=out[-1].unit * np.float32(ks[0]))
    return out


def bn_wrong_sign(seg):
    """fold_batchnorm with c = beta + a * mean (a wrong sign)."""
    real = lower.bn_gain_offset

    def gain_offset(bn):
        a, _ = real(bn)
        return a, torch.as_tensor(bn.beta) + a * torch.as_tensor(bn.mean)

    lower.bn_gain_offset = gain_offset
    try:
        return lower.fold_batchnorm(seg)
    finally:
        lower.bn_gain_offset = real


def bias_off_by_one(seg):
    """fold_bias whose integer bias comes out one too high (offset + one unit)."""
    had = any(isinstance(n, BiasAdd) for n in seg)
    out = lower.fold_bias(seg)
    if had and not any(isinstance(n, BiasAdd) for n in out):
        out = lower._with_lif(out, offset=out[-1].offset + out[-1].unit)
    return out


def theta_floor(seg):
    """quantize_lif rounding theta / unit down instead of to nearest."""
    out = lower.quantize_lif(seg)
    if isinstance(seg[-1], FloatLIF) and isinstance(out[-1], LIF):
        n = seg[-1]
        theta = np.floor(np.float32(n.threshold) / n.unit).clip(1, None).astype(np.int32)
        out = out[:-1] + [dataclasses.replace(out[-1], theta=theta)]
    return out


MUTANTS = {"fold_weight_scale": wrong_weight_scale, "avgpool_to_sumpool": pool_by_k,
           "fold_batchnorm": bn_wrong_sign, "fold_bias": bias_off_by_one,
           "quantize_lif": theta_floor}


def test_every_pass_has_a_mutant() -> None:
    assert sorted(MUTANTS) == sorted(PASS_NAMES)


@pytest.mark.parametrize("name", PASS_NAMES)
def test_a_broken_pass_fails_its_own_check_and_no_other(conv, name, monkeypatch) -> None:
    cfg, data, model = conv
    monkeypatch.setattr(lower, "PASSES", [(n, MUTANTS[n] if n == name else fn)
                                          for n, fn in lower.PASSES])
    enc, nodes = raw_graph(cfg, data, model)
    graphs = pass_checks.pass_graphs(nodes)
    x = data.test.x
    checks = pass_checks.run_checks(model, enc, graphs, cfg.data.time_steps, x)
    assert [c.name for c in checks if not c.equal] == [name]
    bad = checks[PASS_NAMES.index(name) + 1]
    assert bad.error is None and bad.first_difference is not None
    entry = bad.to_json()
    assert entry["pass"] == name and entry["graphs"] == f"after {name} vs before {name}"
    assert entry["equal"] is False and entry["first_difference"]["layer"] in ("lif0", "lif1")
    with pytest.raises(QsnnError, match=rf"^export check of pass '{name}' failed \(after "
                       rf"{name} vs before {name}\): lif\d (spikes|membranes) differ first "
                       r"at test image \d+, step \d+$"):
        runner.lower_and_fold(model, cfg, data, x)


def test_checks_pass_on_the_real_passes_with_distinct_evidence(conv) -> None:
    cfg, data, model = conv
    enc, nodes, entries = runner.lower_and_fold(model, cfg, data, data.test.x)
    assert [e["pass"] for e in entries] == [None, *PASS_NAMES]
    assert all(e["equal"] and e["first_difference"] is None for e in entries)
    assert entries[0]["graphs"] == "raw graph vs trained model"
    assert len({e["graphs"] for e in entries}) == len({str(e["changed"]) for e in entries}) == 6
    assert "bias0: BiasAdd -> removed" in entries[PASS_NAMES.index("fold_bias") + 1]["changed"]
    assert all(e["images"] == len(data.test.x) and e["spikes"] > 0 for e in entries)
    assert all(isinstance(n, Node) for n in nodes) and isinstance(nodes[-1], Readout)


def test_a_broken_lowering_fails_the_first_check(conv, monkeypatch) -> None:
    cfg, data, model = conv

    def high_threshold(module, ctx):
        (node,) = lower.lower_lif(module, ctx)
        return [dataclasses.replace(node, threshold=node.threshold * 1.5)]

    monkeypatch.setitem(lower.HANDLERS, train_lif.LIF, high_threshold)
    with pytest.raises(QsnnError, match=r"^export check of the lowering failed \(raw graph "
                       r"vs trained model\): lif\d"):
        runner.lower_and_fold(model, cfg, data, data.test.x)


def test_an_unrunnable_pass_output_fails_that_pass(conv, monkeypatch) -> None:
    cfg, data, model = conv

    def keep_scaled(seg):  # folds the unit but leaves the ScaledWeight in place
        out = lower.fold_weight_scale(seg)
        return [seg[0]] + out[1:]

    monkeypatch.setattr(lower, "PASSES", [("fold_weight_scale", keep_scaled),
                                          *lower.PASSES[1:]])
    with pytest.raises(QsnnError, match="^export check of pass 'fold_weight_scale' failed "
                       r"\(.*\): the graph cannot run: raw graph: 'conv0' has a weight scale"):
        runner.lower_and_fold(model, cfg, data, data.test.x[:8])


def test_a_pass_that_does_nothing_leaves_raw_nodes(conv, monkeypatch) -> None:
    cfg, data, model = conv
    monkeypatch.setattr(lower, "PASSES", [(n, (lambda seg: seg) if n == "avgpool_to_sumpool"
                                           else fn) for n, fn in lower.PASSES])
    with pytest.raises(QsnnError, match=r"^export: the passes left raw nodes pool0 \(AvgPool\), "
                       r"bn0 \(BatchNorm\)"):
        runner.lower_and_fold(model, cfg, data, data.test.x[:8])


def bn_weight_sign_kept(seg):
    """fold_batchnorm that forgets to flip the weights of negative-gain channels."""
    layer, n = seg[0], len(seg)  # (the pass rewrites the list it is given)
    out = lower.fold_batchnorm(seg)
    return [layer, *out[1:]] if len(out) < n else out


def test_a_pass_writing_into_its_input_is_named(conv, monkeypatch) -> None:
    cfg, data, model = conv

    def flip_in_place(seg):  # fold_batchnorm flipping the shared weight array itself
        if any(isinstance(n, lower.BatchNorm) for n in seg) and seg[0].weight.ndim == 4:
            seg[0].weight[1] *= -1
        return lower.fold_batchnorm(seg)

    monkeypatch.setattr(lower, "PASSES", [(n, flip_in_place if n == "fold_batchnorm" else fn)
                                          for n, fn in lower.PASSES])
    enc, nodes = raw_graph(cfg, data, model)
    with pytest.raises(QsnnError, match="^export: pass 'fold_batchnorm' wrote into the arrays "
                       "of its input graph$"):
        pass_checks.pass_graphs(nodes)


def test_checks_run_in_chunks(conv, monkeypatch) -> None:
    cfg, data, model = conv
    monkeypatch.setattr(lower, "PASSES", [(n, bn_weight_sign_kept if n == "fold_batchnorm"
                                           else fn) for n, fn in lower.PASSES])
    enc, nodes = raw_graph(cfg, data, model)
    graphs = pass_checks.pass_graphs(nodes)
    # blank images first: the weights' sign cannot show before image 12, the third chunk
    x = torch.cat([torch.zeros_like(data.test.x[:12]), data.test.x[:12]])
    whole = pass_checks.run_checks(model, enc, graphs, cfg.data.time_steps, x)
    monkeypatch.setattr(pass_checks, "chunk_size", lambda *a: 5)
    chunked = pass_checks.run_checks(model, enc, graphs, cfg.data.time_steps, x)
    assert [c.to_json() for c in chunked] == [c.to_json() for c in whole]
    assert [c.name for c in chunked if not c.equal] == ["fold_batchnorm"]
    assert chunked[3].first_difference.image >= 12


def test_chunk_size_follows_the_memory_estimate(conv, monkeypatch) -> None:
    cfg, data, model = conv
    enc, nodes = raw_graph(cfg, data, model)
    steps = cfg.data.time_steps
    assert pass_checks.chunk_size(enc, nodes, steps, 48) == 48
    per_image = golden.BATCH_BYTES // pass_checks.chunk_size(enc, nodes, steps, 10**9)
    neurons = 4 * 3 * 3 + 10
    assert per_image >= steps * neurons * pass_checks.TRACE_BYTES
    monkeypatch.setattr(golden, "BATCH_BYTES", 3 * per_image)
    assert pass_checks.chunk_size(enc, nodes, steps, 48) == 3


def test_lowering_and_pass_preconditions_are_one_line_errors() -> None:
    bn = torch.nn.BatchNorm1d(4, track_running_stats=False)
    with pytest.raises(QsnnError, match="^export: bn3 has no running statistics"):
        lower.lower_bn(bn, lower.LowerContext(None, 3, 1.0))
    lif = FloatLIF("lif0", (4,), 1.0, 0.9, "mult", 8, "subtract")
    with pytest.raises(QsnnError, match="^export: lif0 has no unit: its weight scale"):
        lower.quantize_lif([lif])  # a segment without its weight layer
    quantized = lower.quantize_float_lif(dataclasses.replace(lif, unit=np.ones(4, np.float32)))
    with pytest.raises(QsnnError, match="^export: cannot fold an annotation into lif0: it is "
                       "not a FloatLIF"):
        lower.fold_bias([BiasAdd("bias0", np.zeros(4, np.float32)), quantized])
