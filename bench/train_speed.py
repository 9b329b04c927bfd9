"""Training-iteration speed of qsnn against the seed paper's FashionMNIST 4-bit network.

What is measured (CPU, ``torch.set_num_threads`` left at its default):

- ``baseline``: a plain reimplementation of the seed code (jeshraghian/QSNNs,
  ``fmnist/Net.py`` + ``fmnist/train.py``): Brevitas ``QuantConv2d``/``QuantLinear`` with
  their default ``weight_bit_width=4`` quantizer, ``BatchNorm2d`` and snnTorch ``Leaky``
  run step by step for T steps, snnTorch ``mse_count_loss``, Adam, grad-norm clip 1.0,
  clamp of every parameter to [-1, 1] before the step (as the seed), per-iteration
  ``CosineAnnealingLR``. Input: float pixels ``x / 255``.
- ``qsnn``: ``QSNN`` built from ``configs/fashion-mnist-conv.yaml`` (hardware-aware int4),
  trained with the step of ``qsnn.train.loop.train_epoch``; input: uint8 pixels.
- ``qsnn_float``: the same with ``model.hardware_aware=false`` (Brevitas fake-quant).

One "iteration" is forward + loss + backward + grad clip + Adam step + weight clip +
scheduler step on one batch. The reported figure is the median wall time
(``time.perf_counter``) of ``--iters`` timed iterations after ``--warmup`` untimed ones.
All models see the same batches and their iterations are interleaved round-robin, so a
change in machine load hits them alike; the 1-minute load average before and after is
recorded (on a loaded 2-core machine OpenMP waits inflate small-op loops a lot).
``speedup = baseline / qsnn``.

It also checks "same loss on the same batch where the maths is the same": the baseline's
weights and BatchNorm state (after one train-mode forward, so the running stats are not
the initial 0/1) are copied into the float-mode qsnn model, both are put in eval mode and
their losses on one batch (qsnn's ``mse_count`` on each model's spikes; snnTorch's on the
baseline's is recorded too) are compared. The check is repeated with a baseline that uses
qsnn's power-of-two weight quantizer, which separates the quantizer from everything else.
Unless ``--no-profile``, one qsnn hardware-aware iteration is then profiled
(torch.profiler plus forward hooks; not part of the timing) by phase, block, autograd node
and op category.

Results: a table on stdout and ``bench/out/train_speed.json`` (``--quick``, a seconds-long
smoke run with batch 8 and T = 4, writes ``bench/out/train_speed_quick.json``).

    .venv/bin/python bench/train_speed.py [--data synthetic|real] [--batch 128] [--steps 100]
        [--iters 5] [--warmup 1] [--no-profile] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brevitas.nn as qnn
import snntorch as snn
import torch
import torch.nn.functional as F
from brevitas.quant.fixed_point import Int8WeightPerTensorFixedPoint
from snntorch import functional as SF
from snntorch import surrogate
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, record_function

from qsnn import config
from qsnn.config import RunConfig
from qsnn.errors import QsnnError
from qsnn.train import perf
from qsnn.train.loop import weight_params
from qsnn.train.losses import make_loss
from qsnn.train.model import QSNN, predict
from qsnn.train.schedules import make_scheduler

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "fashion-mnist-conv.yaml"
OUT_DIR = ROOT / "bench" / "out"
PIXEL_MAX = 255
INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
ITERS_PER_EPOCH = 469  # 60000 / 128, rounded up: the seed's t_max = 4690 = 10 epochs
SEED = 0

Batch = tuple[Tensor, Tensor]  # (uint8 images [B, 1, 28, 28], int64 labels [B])
StepFn = Callable[[Tensor, Tensor], float]


# -- the seed's network and training step ----------------------------------------------------
@dataclass(frozen=True)
class SeedHParams:
    """The seed paper's 4-bit FashionMNIST hyperparameters."""

    num_bits: int = 4
    beta: float = 0.974
    threshold: float = 2.473
    slope: float = 5.5565
    dropout: float = 0.0736
    lr: float = 2.908e-3
    correct_rate: float = 0.8
    incorrect_rate: float = 0.2
    t_max: int = 10 * ITERS_PER_EPOCH


class SeedNet(nn.Module):
    """``fmnist/Net.py`` of the seed (quantized branch, batch norm on), returning spikes."""

    def __init__(self, hp: SeedHParams, num_steps: int, weight_quant: Any = None) -> None:
        super().__init__()
        self.num_steps = num_steps
        grad = surrogate.fast_sigmoid(hp.slope)
        kw: dict[str, Any] = dict(bias=False, weight_bit_width=hp.num_bits)
        if weight_quant is not None:  # only for the quantizer diagnostic, not the baseline
            kw["weight_quant"] = weight_quant
        self.conv1 = qnn.QuantConv2d(1, 16, 5, **kw)
        self.conv1_bn = nn.BatchNorm2d(16)
        self.lif1 = snn.Leaky(hp.beta, threshold=hp.threshold, spike_grad=grad)
        self.conv2 = qnn.QuantConv2d(16, 64, 5, **kw)
        self.conv2_bn = nn.BatchNorm2d(64)
        self.lif2 = snn.Leaky(hp.beta, threshold=hp.threshold, spike_grad=grad)
        self.fc1 = qnn.QuantLinear(64 * 4 * 4, 10, **kw)
        self.lif3 = snn.Leaky(hp.beta, threshold=hp.threshold, spike_grad=grad)
        self.dropout = nn.Dropout(hp.dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x: float pixels in [0, 1], [B, 1, 28, 28]. Returns output spikes [T, B, 10]."""
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mem3 = self.lif3.init_leaky()
        spk3_rec = []
        for _ in range(self.num_steps):
            cur1 = self.conv1_bn(F.avg_pool2d(self.conv1(x), 2))
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.conv2_bn(F.avg_pool2d(self.conv2(spk1), 2))
            spk2, mem2 = self.lif2(cur2, mem2)
            cur3 = self.dropout(self.fc1(spk2.flatten(1)))
            spk3, mem3 = self.lif3(cur3, mem3)
            spk3_rec.append(spk3)
        return torch.stack(spk3_rec, dim=0)


def seed_step_fn(net: SeedNet, hp: SeedHParams) -> StepFn:
    """The seed's ``train()`` loop body as a function of one (uint8 x, y) batch."""
    criterion = SF.mse_count_loss(correct_rate=hp.correct_rate, incorrect_rate=hp.incorrect_rate)
    opt = torch.optim.Adam(net.parameters(), lr=hp.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp.t_max, eta_min=0)

    def step(x: Tensor, y: Tensor) -> float:
        spk_rec = net(x.to(torch.float32) / PIXEL_MAX)
        loss = criterion(spk_rec, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        with torch.no_grad():
            for param in net.parameters():
                param.clamp_(-1, 1)
        opt.step()
        sched.step()
        return loss.item()

    return step


# -- qsnn ----------------------------------------------------------------------------------
def qsnn_config(steps: int, batch: int, hardware_aware: bool) -> RunConfig:
    """The FashionMNIST conv config with T, batch size and hardware awareness overridden."""
    return config.apply_overrides(config.load(CONFIG), [
        f"data.time_steps={steps}", f"train.batch_size={batch}",
        f"model.hardware_aware={'true' if hardware_aware else 'false'}",
    ])


def build_qsnn(cfg: RunConfig) -> QSNN:
    """A freshly initialised qsnn model (seeded by the caller)."""
    return QSNN(cfg, INPUT_SHAPE, NUM_CLASSES, PIXEL_MAX)


def qsnn_step_fn(model: QSNN, cfg: RunConfig) -> StepFn:
    """The body of ``qsnn.train.loop.train_epoch`` as a function of one batch."""
    tc = cfg.train
    loss_fn = make_loss(tc)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = make_scheduler(opt, tc, ITERS_PER_EPOCH)

    def step(x: Tensor, y: Tensor) -> float:
        with record_function("qsnn.forward"):
            spk = model(x)
        with record_function("qsnn.loss"):
            loss = loss_fn(spk, y)
        opt.zero_grad(set_to_none=True)
        with record_function("qsnn.backward"):
            loss.backward()
        with record_function("qsnn.optimizer"):
            if tc.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            if tc.weight_clip is not None:
                with torch.no_grad():
                    for w in weight_params(model):
                        w.clamp_(-tc.weight_clip, tc.weight_clip)
            sched.step()
        value = loss.item()
        int((predict(spk.sum(0)) == y).sum())  # train_epoch's accuracy bookkeeping
        return value

    return step


def seed_hparams_mismatch(cfg: RunConfig, hp: SeedHParams) -> list[str]:
    """Keys where the qsnn config disagrees with the seed hyperparameters."""
    m, t = cfg.model, cfg.train
    pairs = {
        "model.beta": (m.beta, hp.beta), "model.threshold": (m.threshold, hp.threshold),
        "model.slope": (m.slope, hp.slope), "model.dropout": (m.dropout, hp.dropout),
        "train.lr": (t.lr, hp.lr), "train.correct_rate": (t.correct_rate, hp.correct_rate),
        "train.incorrect_rate": (t.incorrect_rate, hp.incorrect_rate),
        "model.precision": (cfg.weight_bits, hp.num_bits),
    }
    return [f"{k}: config {a} vs seed {b}" for k, (a, b) in pairs.items() if a != b]


# -- data and timing -----------------------------------------------------------------------
def make_batches(kind: str, batch: int, count: int) -> list[Batch]:
    """``count`` batches of uint8 images and labels: seeded random, or FashionMNIST train."""
    n = batch * count
    if kind == "synthetic":
        gen = torch.Generator().manual_seed(SEED)
        x = torch.randint(0, PIXEL_MAX + 1, (n, *INPUT_SHAPE), dtype=torch.uint8, generator=gen)
        y = torch.randint(0, NUM_CLASSES, (n,), dtype=torch.int64, generator=gen)
    else:
        from qsnn.data import load_dataset  # imported lazily: only needed for --data real

        try:
            split = load_dataset("fashion-mnist").train
        except QsnnError as err:
            raise SystemExit(f"--data real: {err}") from err
        if len(split) < n:
            raise SystemExit(f"fashion-mnist has {len(split)} training images, need {n}")
        x, y = split.x[:n], split.y[:n]
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def build_steps(args: argparse.Namespace) -> dict[str, StepFn]:
    """Training steps of the baseline, qsnn hardware-aware and qsnn float, each seeded."""
    hp = SeedHParams()
    torch.manual_seed(SEED)
    steps = {"baseline": seed_step_fn(SeedNet(hp, args.steps), hp)}
    for name, hw in (("qsnn", True), ("qsnn_float", False)):
        cfg = qsnn_config(args.steps, args.batch, hw)
        torch.manual_seed(SEED)
        steps[name] = qsnn_step_fn(build_qsnn(cfg), cfg)
    return steps


def time_step(step: StepFn, x: Tensor, y: Tensor) -> float:
    """Wall seconds of one training iteration (fails on a non-finite loss)."""
    start = time.perf_counter()
    loss = step(x, y)
    elapsed = time.perf_counter() - start
    if not math.isfinite(loss):
        raise SystemExit(f"non-finite training loss {loss}")
    return elapsed


def bench_models(args: argparse.Namespace, batches: list[Batch]) -> dict[str, list[float]]:
    """Per-iteration seconds of each model, iterations interleaved round-robin.

    Interleaving (baseline, qsnn, qsnn_float, baseline, ...) makes a change in machine
    load during the run hit all models alike, so the ratios stay meaningful.
    """
    steps = build_steps(args)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i, (x, y) in enumerate(batches):
        for name, step in steps.items():
            elapsed = time_step(step, x, y)
            label = "warm-up" if i < args.warmup else "timed"
            print(f"  [iter {i} {label:<7} {name:<10} {elapsed:7.3f}s]", file=sys.stderr,
                  flush=True)
            if i >= args.warmup:
                times[name].append(elapsed)
    return times


# -- equal-loss check ----------------------------------------------------------------------
def copy_seed_into_qsnn(seed: SeedNet, model: QSNN) -> None:
    """Copy conv/fc weights and BatchNorm parameters and running stats into ``model``."""
    pairs = [(seed.conv1, seed.conv1_bn), (seed.conv2, seed.conv2_bn), (seed.fc1, None)]
    with torch.no_grad():
        for block, (layer, bn) in zip(model.blocks, pairs, strict=True):
            block.layer.weight.copy_(layer.weight)
            if bn is not None:
                block.bn.load_state_dict(bn.state_dict())


@torch.no_grad()
def eval_losses(seed: SeedNet, model: QSNN, cfg: RunConfig, batch: Batch) -> dict[str, float]:
    """Eval-mode losses of both models on one batch, with qsnn's loss on both outputs."""
    copy_seed_into_qsnn(seed, model)
    seed.eval()
    model.eval()
    x, y = batch
    spk_seed = seed(x.to(torch.float32) / PIXEL_MAX)
    spk_qsnn = model(x)
    loss_fn = make_loss(cfg.train)
    hp = SeedHParams()
    snn_loss = SF.mse_count_loss(correct_rate=hp.correct_rate, incorrect_rate=hp.incorrect_rate)
    base, ours = float(loss_fn(spk_seed, y)), float(loss_fn(spk_qsnn, y))
    return {
        "baseline": base, "qsnn_float": ours, "abs_diff": abs(base - ours),
        "spike_mismatches": int((spk_seed != spk_qsnn).sum()),
        "snntorch_loss_baseline": float(snn_loss(spk_seed, y)),
    }


def quantized_weight_diff(seed: SeedNet, model: QSNN) -> float:
    """Largest |difference| of the effective (fake-quantized) weights of the two models."""
    layers = (seed.conv1, seed.conv2, seed.fc1)
    with torch.no_grad():
        return max(
            float((a.quant_weight().value - b.layer.quant_weight().value).abs().max())
            for a, b in zip(layers, model.blocks, strict=True)
        )


def loss_check(args: argparse.Namespace, batch: Batch) -> dict[str, Any]:
    """Equal-loss check with the seed's quantizer and with qsnn's (see module docstring)."""
    hp = SeedHParams()
    cfg = qsnn_config(args.steps, args.batch, hardware_aware=False)
    out: dict[str, Any] = {}
    for tag, quant in (("", None), ("_same_quantizer", Int8WeightPerTensorFixedPoint)):
        torch.manual_seed(SEED)
        seed = SeedNet(hp, args.steps, weight_quant=quant)
        warm_bn_stats(seed, batch)
        model = build_qsnn(cfg)
        res = eval_losses(seed, model, cfg, batch)
        res["max_quant_weight_diff"] = quantized_weight_diff(seed, model)
        out.update({f"{k}{tag}": v for k, v in res.items()})
    return out


@torch.no_grad()
def warm_bn_stats(seed: SeedNet, batch: Batch) -> None:
    """One train-mode forward so the BN running stats are not the trivial (0, 1) init."""
    seed.train()
    seed(batch[0].to(torch.float32) / PIXEL_MAX)


# -- profile -------------------------------------------------------------------------------
OP_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conv/linear backward", ("aten::convolution_backward", "aten::mm")),
    ("conv/linear forward", ("aten::mkldnn_convolution", "aten::addmm", "aten::linear")),
    ("zero-fill + grad accumulation", ("aten::fill_", "aten::zero_", "aten::add_")),
    ("avg pool fwd+bwd", ("avg_pool2d",)),
    ("BN fold stats (var/mean/sqrt)", ("aten::var", "aten::mean", "aten::sqrt")),
    ("leak floor / round", ("aten::floor", "aten::round")),
    ("stack/cat/copy", ("aten::stack", "aten::cat", "aten::copy_", "aten::_to_copy")),
)
GRAD_FN_PREFIX = "autograd::engine::evaluate_function: "


def categorize(name: str) -> str:
    """Category of a profiler op name (self time); unmatched ops are 'other elementwise'."""
    for cat, keys in OP_CATEGORIES:
        if any(name == k or name.startswith(k + "_") for k in keys):
            return cat
    return "other elementwise (LIF update, STE, surrogate, ...)"


def timing_hooks(model: QSNN, acc: dict[str, float]) -> list[Any]:
    """Hooks adding the wall time of each block's forward and of its LIF loop to ``acc``."""
    starts: list[float] = []

    def pre(*_: Any) -> None:
        starts.append(time.perf_counter())

    def post_for(key: str) -> Callable[..., None]:
        def post(*_: Any) -> None:
            acc[key] = acc.get(key, 0.0) + time.perf_counter() - starts.pop()
        return post

    hooks = []
    for i, block in enumerate(model.blocks):
        for key, mod in ((f"block{i}", block), (f"block{i}.lif", block.lif)):
            hooks.append(mod.register_forward_pre_hook(pre))
            hooks.append(mod.register_forward_hook(post_for(key)))
    return hooks


def profile_qsnn(args: argparse.Namespace, batches: list[Batch]) -> dict[str, Any]:
    """torch.profiler breakdown of one hardware-aware qsnn iteration (after a warm-up)."""
    cfg = qsnn_config(args.steps, args.batch, hardware_aware=True)
    torch.manual_seed(SEED)
    model = build_qsnn(cfg)
    step = qsnn_step_fn(model, cfg)
    step(*batches[0])
    fwd: dict[str, float] = {}
    hooks = timing_hooks(model, fwd)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step(*batches[-1])
        total = time.perf_counter() - start
    for h in hooks:
        h.remove()
    res = summarize_profile(prof, total)
    res["forward_s"] = forward_split(fwd, len(model.blocks))
    return res


def forward_split(fwd: dict[str, float], n_blocks: int) -> dict[str, float]:
    """Per block: current (weights, pool, BN fold) vs LIF time loop, from the hook times."""
    out = {}
    for i in range(n_blocks):
        lif = fwd.get(f"block{i}.lif", 0.0)
        out[f"block{i} current"] = fwd.get(f"block{i}", 0.0) - lif
        out[f"block{i} LIF loop"] = lif
    return out


def summarize_profile(prof: profile, total: float) -> dict[str, Any]:
    """Phases (record_function ranges), backward per autograd node, op categories, top ops."""
    events = [e for e in prof.key_averages() if e.key != "ProfilerStep*"]
    phases = {e.key.split(".", 1)[1]: e.cpu_time_total / 1e6
              for e in events if e.key.startswith("qsnn.")}
    grad_fns = {e.key[len(GRAD_FN_PREFIX):]: (e.count, e.cpu_time_total / 1e6)
                for e in events if e.key.startswith(GRAD_FN_PREFIX)}
    ops = [e for e in events if e.key.startswith("aten::")]
    cats: dict[str, float] = {}
    for e in ops:
        cat = categorize(e.key)
        cats[cat] = cats.get(cat, 0.0) + e.self_cpu_time_total / 1e6
    top = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return {
        "wall_s": total,
        "phases_s": phases,
        "backward_by_grad_fn_s": dict(sorted(grad_fns.items(), key=lambda kv: -kv[1][1])[:10]),
        "op_categories_self_s": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
        "top_ops_self_s": [(e.key, e.count, e.self_cpu_time_total / 1e6) for e in top],
    }


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Print how long a bench phase took (to stderr, so stdout stays the table)."""
    start = time.perf_counter()
    yield
    print(f"  [{label}: {time.perf_counter() - start:.1f}s]", file=sys.stderr, flush=True)


# -- report --------------------------------------------------------------------------------
def summarize(args: argparse.Namespace, times: dict[str, list[float]],
              check: dict[str, Any]) -> dict[str, Any]:
    """The JSON result record."""
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "baseline_s_per_iter": med["baseline"],
        "qsnn_s_per_iter": med["qsnn"],
        "speedup": med["baseline"] / med["qsnn"],
        "qsnn_float_s_per_iter": med["qsnn_float"],
        "float_speedup": med["baseline"] / med["qsnn_float"],
        "batch": args.batch, "steps": args.steps, "iters": args.iters, "warmup": args.warmup,
        "data": args.data, "threads": torch.get_num_threads(),
        "times_s": times,
        "eval_loss_baseline": check["baseline"],
        "eval_loss_qsnn_float": check["qsnn_float"],
        "eval_loss_abs_diff": check["abs_diff"],
        "eval_check": check,
        "torch": torch.__version__, "snntorch": snn.__version__,
    }


def print_table(res: dict[str, Any]) -> None:
    """Human-readable summary."""
    print(f"\ntrain_speed: FashionMNIST conv int4, batch {res['batch']}, T {res['steps']}, "
          f"{res['iters']} timed + {res['warmup']} warm-up iters, {res['data']} data, "
          f"{res['threads']} threads, load avg {res['loadavg_1min'][0]:.1f} -> "
          f"{res['loadavg_1min'][1]:.1f} on {res['cpus']} CPUs")
    print(f"{'model':<28}{'s/iter (median)':>16}{'speedup':>10}")
    rows = [("baseline (seed code)", res["baseline_s_per_iter"], 1.0),
            ("qsnn (hardware-aware int4)", res["qsnn_s_per_iter"], res["speedup"]),
            ("qsnn float (fake-quant)", res["qsnn_float_s_per_iter"], res["float_speedup"])]
    for name, s, sp in rows:
        print(f"{name:<28}{s:>16.3f}{sp:>9.2f}x")
    c = res["eval_check"]
    print(f"eval loss (qsnn mse_count) baseline {c['baseline']:.6f}  qsnn-float "
          f"{c['qsnn_float']:.6f}  |diff| {c['abs_diff']:.3g}  spike mismatches "
          f"{c['spike_mismatches']}  max |Wq diff| {c['max_quant_weight_diff']:.3g}")
    print(f"  same check, baseline with qsnn's quantizer: |diff| "
          f"{c['abs_diff_same_quantizer']:.3g}  spike mismatches "
          f"{c['spike_mismatches_same_quantizer']}  max |Wq diff| "
          f"{c['max_quant_weight_diff_same_quantizer']:.3g}")


def print_profile(prof: dict[str, Any]) -> None:
    """Human-readable profile breakdown."""
    print(f"\nprofile: one qsnn hardware-aware iteration, {prof['wall_s']:.3f}s wall under "
          "torch.profiler; backward rows include child ops, 'ops' rows are self time")
    sections = (("phase", prof["phases_s"]), ("forward", prof["forward_s"]),
                ("ops", prof["op_categories_self_s"]))
    for tag, table in sections:
        for k, v in table.items():
            print(f"  {tag:<9}{k:<52}{v:>8.3f}s")
    for k, (count, v) in prof["backward_by_grad_fn_s"].items():
        print(f"  {'backward':<9}{k + f' x{count}':<52}{v:>8.3f}s")
    for name, count, v in prof["top_ops_self_s"]:
        print(f"  {'top op':<9}{name + f' x{count}':<52}{v:>8.3f}s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; ``--quick`` sets a tiny smoke configuration."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=("synthetic", "real"), default="synthetic")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="time steps T")
    p.add_argument("--iters", type=int, default=5, help="timed iterations per model")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per model")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the torch.profiler breakdown of a qsnn iteration")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 8, T 4, 1+1 iters")
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.iters, args.warmup = 8, 4, 1, 1
    if args.out is None:
        args.out = OUT_DIR / ("train_speed_quick.json" if args.quick else "train_speed.json")
    if min(args.batch, args.steps, args.iters) < 1 or args.warmup < 0:
        p.error("--batch, --steps and --iters must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; returns the record."""
    args = parse_args(argv)
    # qsnn train keeps freed memory in the heap; do the same for every model measured here.
    allocator = perf.keep_freed_memory()
    mismatch = seed_hparams_mismatch(qsnn_config(args.steps, args.batch, True), SeedHParams())
    for line in mismatch:
        print(f"warning: {CONFIG.name} differs from the seed: {line}", file=sys.stderr)
    batches = make_batches(args.data, args.batch, args.warmup + args.iters)
    load_before = os.getloadavg()[0]
    times = bench_models(args, batches)
    with timed("loss check"):
        check = loss_check(args, batches[0])
    res = summarize(args, times, check)
    res["loadavg_1min"] = [load_before, os.getloadavg()[0]]
    res["keep_freed_memory"] = allocator
    res["cpus"] = os.cpu_count()
    print_table(res)
    if args.profile:
        with timed("profile"):
            res["profile"] = profile_qsnn(args, batches)
        print_profile(res["profile"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
