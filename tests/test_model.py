"""Hardware-aware model in eval mode == an independent integer re-implementation of §2.

The reference below reads only the trained parameters (integer weights from Brevitas,
scales, BatchNorm running statistics, beta, theta), folds them into integer theta and
bias with numpy float32 arithmetic, and runs the network with Python/numpy integers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import conv2d_int, lif_reference, sum_pool

from qsnn import config
from qsnn.config import RunConfig
from qsnn.lfsr import rate_table
from qsnn.train.lif import quantize_beta
from qsnn.train.model import QSNN, parse_layers


def fold_block(block, in_scale: float):
    """Integer (W, theta, bias, sign) of one block, from its parameters alone."""
    qw = block.layer.quant_weight()
    w = qw.int().detach().numpy().astype(np.int64)
    out = w.shape[0]
    scale = np.broadcast_to(qw.scale.detach().numpy().reshape(-1), (out,)).astype(np.float32)
    k = block.spec.pool
    unit = scale * np.float32(in_scale)
    if k > 1:
        unit = unit / np.float32(k * k)
    sign = np.ones(out, dtype=np.int64)
    offset = np.zeros(out, dtype=np.float32)
    has_offset = False
    if block.bn is not None:
        bn = block.bn
        a = bn.weight.detach().numpy() / np.sqrt(bn.running_var.numpy() + np.float32(bn.eps))
        c = bn.bias.detach().numpy() - a * bn.running_mean.numpy()
        sign = np.where(a < 0, -1, 1)
        unit = unit * np.maximum(np.abs(a), np.float32(1e-4))
        offset, has_offset = c.astype(np.float32), True
    if block.bias is not None:
        offset = offset + block.bias.detach().numpy()
        has_offset = True
    bias = np.round(offset / unit).astype(np.int64) if has_offset else np.zeros(out, np.int64)
    theta = np.clip(np.round(np.float32(block.lif.threshold.item()) / unit), 1, 2**20)
    lif = block.lif
    param = quantize_beta(float(lif.beta.clamp(0, 1)), lif.leak, lif.frac_bits)
    return w, theta.astype(np.int64), bias, sign, param


def reference_forward(model: QSNN, cfg: RunConfig, x: torch.Tensor, pixel_max: int):
    """Output spike trains [T, B, classes] computed with integers only."""
    steps, enc = cfg.data.time_steps, cfg.data.encoding
    outs = []
    for b in range(x.shape[0]):
        img = x[b].numpy().astype(np.int64)
        if enc == "direct":
            frames = [img] * steps
        elif enc == "rate":
            r = rate_table(cfg.data.rate_seed, steps, img.size).numpy().astype(np.int64)
            frames = [(r[t] * pixel_max < img.reshape(-1) * 256).astype(np.int64)
                      .reshape(img.shape) for t in range(steps)]
        else:
            frames = [img[t] for t in range(steps)]
        h = frames
        for i, block in enumerate(model.blocks):
            in_scale = 1.0 / pixel_max if (i == 0 and enc == "direct") else 1.0
            w, theta, bias, sign, param = fold_block(block, in_scale)
            currents = []
            for f in h:
                if block.spec.kind == "fc":
                    cur = w @ f.reshape(-1)
                else:
                    cur = conv2d_int(f, w, block.spec.padding)
                    if block.spec.pool > 1:
                        cur = sum_pool(cur, block.spec.pool)
                shape = cur.shape
                sb = sign.reshape(-1, *([1] * (cur.ndim - 1)))
                bb = bias.reshape(-1, *([1] * (cur.ndim - 1)))
                currents.append(((cur * sb) + bb).reshape(-1).tolist())
            th = np.broadcast_to(theta.reshape(-1, *([1] * (len(shape) - 1))), shape)
            spikes, _ = lif_reference(currents, th.reshape(-1).tolist(), block.lif.leak, param,
                                      block.lif.frac_bits, block.lif.reset)
            h = [np.array(s, dtype=np.int64).reshape(shape) for s in spikes]
        outs.append(np.stack(h))
    return np.stack(outs, axis=1)


CASES = {
    "mlp-direct": (["fc24", "lif", "fc10", "lif"], "direct", (1, 8, 8), 16, []),
    "mlp-rate-shift-zero": (["fc24", "lif", "fc10", "lif"], "rate", (1, 8, 8), 16,
                            ["model.leak=shift", "model.reset=zero", "model.beta=0.875"]),
    "mlp-bias-nonereset": (["fc20", "lif", "fc10", "lif"], "direct", (1, 8, 8), 16,
                           ["model.bias=true", "model.reset=none", "model.precision=int2"]),
    "conv-bn-pool": (["conv4k3", "avgpool2", "bn", "lif", "fc10", "lif"], "direct",
                     (1, 8, 8), 255, ["model.per_channel=true"]),
    "conv-events-int8": (["conv3k3p1", "avgpool2", "bn", "lif", "flatten", "fc10", "lif"],
                         "events", (2, 8, 8), 1, ["model.precision=int8"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_model_equals_integer_reference(case: str) -> None:
    layers, enc, shape, pmax, extra = CASES[case]
    cfg = config.apply_overrides(RunConfig(), [
        f"model.layers=[{', '.join(layers)}]", f"data.encoding={enc}", "data.time_steps=6",
        "model.threshold=0.4", *extra])
    torch.manual_seed(0)
    model = QSNN(cfg, shape, 10, pmax)
    gen = torch.Generator().manual_seed(1)
    for block in model.blocks:  # non-trivial BN statistics, biases
        if block.bn is not None:
            block.bn.running_mean.uniform_(-0.5, 0.5, generator=gen)
            block.bn.running_var.uniform_(0.2, 2.0, generator=gen)
            with torch.no_grad():
                block.bn.weight.uniform_(-1.5, 1.5, generator=gen)
                block.bn.bias.uniform_(-0.3, 0.3, generator=gen)
        if block.bias is not None:
            with torch.no_grad():
                block.bias.uniform_(-0.5, 0.5, generator=gen)
    if enc == "events":
        x = (torch.rand(5, 6, *shape, generator=gen) < 0.3).to(torch.uint8)
    else:
        x = torch.randint(0, pmax + 1, (5, *shape), generator=gen, dtype=torch.uint8)
    model.eval()
    with torch.no_grad():
        spk, trace = model(x, record=True)
    ref = reference_forward(model, cfg, x, pmax)
    assert sum(s.sum() for s in trace.spikes) > 0, "degenerate case: no spikes at all"
    assert np.array_equal(spk.numpy().astype(np.int64), ref)


def test_parse_layers_shapes_and_errors() -> None:
    specs = parse_layers(["conv16k5", "avgpool2", "bn", "lif", "conv64k5", "avgpool2", "bn",
                          "lif", "fc10", "dropout", "lif"], (1, 28, 28))
    assert [s.out_ch for s in specs] == [16, 64, 10]
    assert specs[2].in_ch == 64 * 4 * 4 and specs[2].dropout == "current"
    from qsnn.errors import QsnnError

    with pytest.raises(QsnnError, match="no 'lif'"):
        parse_layers(["fc10"], (64,))
    with pytest.raises(QsnnError, match="does not fit"):
        parse_layers(["conv4k3", "avgpool4", "lif"], (1, 8, 8))


@pytest.mark.parametrize("hw", [True, False])
def test_direct_first_layer_is_computed_once(hw: bool) -> None:
    cfg = config.apply_overrides(RunConfig(), ["data.time_steps=7", f"model.hardware_aware={hw}"])
    model = QSNN(cfg, (1, 8, 8), 10, 16)
    block = model.blocks[0]
    seen = []
    name = "int_current" if hw else "float_current"
    inner = getattr(block, name)
    setattr(block, name, lambda x: (seen.append(x.shape[0]), inner(x))[1])
    out = model(torch.randint(0, 17, (3, 1, 8, 8), dtype=torch.uint8))
    assert out.shape == (7, 3, 10)
    assert seen == [3]  # one call on the batch of 3 images, not 7 x 3


@pytest.mark.parametrize("k,pad", [(2, 0), (2, 1), (3, 0)])
def test_fused_sum_pool_is_exact(k: int, pad: int) -> None:
    import torch.nn.functional as F

    from qsnn.train.layers import fuse_sum_pool

    gen = torch.Generator().manual_seed(k)
    w = torch.randint(-7, 8, (4, 3, 5, 5), generator=gen).float()
    size = 5 - 2 * pad + 1 + k * 3 - 1
    x = torch.randint(0, 256, (2, 3, size, size), generator=gen).float()
    ref = F.avg_pool2d(F.conv2d(x, w, padding=pad), k, divisor_override=1)
    got = F.conv2d(x, fuse_sum_pool(w, k), stride=k, padding=pad)
    assert torch.equal(got, ref)


def test_float_mode_current_uses_the_quantized_weight() -> None:
    """Fake-quant float mode applies Brevitas's quantized weight, exactly as its layer does."""
    cfg = config.apply_overrides(RunConfig(), [
        "model.hardware_aware=false", "model.layers=[conv4k3, avgpool2, lif, fc10, lif]"])
    model = QSNN(cfg, (1, 8, 8), 10, 16).eval()
    x = torch.rand(3, 1, 8, 8)
    block = model.blocks[0]
    want = torch.nn.functional.avg_pool2d(block.layer(x), 2)
    assert torch.equal(block.float_current(x), want)
    w = block.layer.quant_weight()
    assert not torch.equal(w.value, block.layer.weight)
