"""The quantized spiking network: input encoding followed by spiking blocks.

Layer tokens (``model.layers``) are grouped into blocks::

    (fcN | convCkK[pP]) [avgpoolK] [bn] [dropout] lif [dropout]   ([flatten] may precede fc)

A ``dropout`` before ``lif`` drops input current (as the seed does after its fc layer),
after ``lif`` it drops output spikes; both act in training only.

Encodings (see ``qsnn.lfsr`` for the rate LFSR):

- direct: the integer image every step; the first block's current is static, so it is
  computed once per image, not T times.
- rate:   LFSR Bernoulli spikes ``x_j[t] = r[t, j] * pixel_max < p_j * 256``.
- events: pre-binned binary event frames [B, T, C, H, W].

The readout is the spike count of the last block; prediction = argmax (lowest index on
ties).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from qsnn.config import RunConfig
from qsnn.errors import QsnnError
from qsnn.export.ir import Encoding, conv_out_size, pool_out_size
from qsnn.lfsr import rate_spikes, rate_table
from qsnn.train.layers import Block, BlockSpec
from qsnn.train.lif import LIF


@dataclass
class Trace:
    """Per-block spikes and membranes [T, B, ...] recorded by ``forward(record=True)``."""

    spikes: list[Tensor]
    membranes: list[Tensor]


def parse_layers(tokens: list[str], input_shape: tuple[int, ...]) -> list[BlockSpec]:
    """Group layer tokens into :class:`BlockSpec` s, inferring channel counts and shapes."""
    specs: list[BlockSpec] = []
    shape = tuple(input_shape)
    cur: dict | None = None
    flatten = False

    def close() -> None:
        nonlocal cur, shape
        if cur is None:
            return
        if not cur.get("lif"):
            raise QsnnError(f"config key 'model.layers': block '{cur['tok']}' has no 'lif'")
        specs.append(BlockSpec(**{k: v for k, v in cur.items() if k not in ("tok", "lif")}))
        cur = None

    for tok in tokens:
        if tok.startswith(("fc", "conv")):
            close()
            if tok.startswith("fc"):
                n_in = 1
                for d in shape:
                    n_in *= d
                cur = dict(tok=tok, kind="fc", in_ch=n_in, out_ch=int(tok[2:]),
                           flatten=flatten or len(shape) > 1)
                shape = (cur["out_ch"],)
            else:
                if len(shape) != 3:
                    raise QsnnError(f"config key 'model.layers': '{tok}' needs a C,H,W input")
                m = re.match(r"conv(\d+)k(\d+)(?:p(\d+))?$", tok)
                out, k, p = int(m[1]), int(m[2]), int(m[3] or 0)
                h, w = conv_out_size(shape[1], k, p), conv_out_size(shape[2], k, p)
                if h < 1 or w < 1:
                    raise QsnnError(f"config key 'model.layers': '{tok}' is larger than its input")
                cur = dict(tok=tok, kind="conv", in_ch=shape[0], out_ch=out, kernel=k, padding=p)
                shape = (out, h, w)
            flatten = False
        elif tok == "flatten":
            close()
            flatten = True
        elif cur is None:
            raise QsnnError(f"config key 'model.layers': '{tok}' must follow an fc or conv layer")
        elif tok.startswith("avgpool"):
            k = int(tok[7:])
            if cur["kind"] != "conv" or shape[1] % k or shape[2] % k or cur.get("bn"):
                raise QsnnError(f"config key 'model.layers': '{tok}' does not fit its conv output")
            cur["pool"] = k
            shape = (shape[0], pool_out_size(shape[1], k), pool_out_size(shape[2], k))
        elif tok == "bn":
            cur["bn"] = True
        elif tok == "lif":
            cur["lif"] = True
        elif tok == "dropout":
            cur["dropout"] = "spikes" if cur.get("lif") else "current"
    close()
    if not specs:
        raise QsnnError("config key 'model.layers' has no fc or conv layer")
    return specs


class QSNN(nn.Module):
    """Quantized SNN; ``forward`` returns output spikes [T, B, classes]."""

    def __init__(
        self, cfg: RunConfig, input_shape: tuple[int, ...], num_classes: int, pixel_max: int
    ) -> None:
        super().__init__()
        m, d = cfg.model, cfg.data
        self.encoding, self.steps, self.pixel_max = d.encoding, d.time_steps, pixel_max
        self.hardware_aware = cfg.hardware_aware
        specs = parse_layers(m.layers, input_shape)
        if specs[-1].out_ch != num_classes:
            raise QsnnError(
                f"config key 'model.layers': last layer has {specs[-1].out_ch} outputs, "
                f"the dataset has {num_classes} classes"
            )
        blocks = []
        for i, spec in enumerate(specs):
            lif = LIF(
                m.beta, m.threshold, learn_beta=m.learn_beta, learn_threshold=m.learn_threshold,
                reset=m.reset, surrogate=m.surrogate, slope=m.slope, leak=m.leak,
                leak_frac_bits=m.leak_frac_bits,
            )
            in_scale = 1.0 / pixel_max if (i == 0 and d.encoding == Encoding.DIRECT) else 1.0
            blocks.append(Block(
                spec, lif, bits=cfg.weight_bits, per_channel=m.per_channel,
                hardware_aware=cfg.hardware_aware, bias=m.bias, in_scale=in_scale,
                dropout=m.dropout,
            ))
        self.blocks = nn.ModuleList(blocks)
        if d.encoding == Encoding.RATE:
            pixels = 1
            for s in input_shape:
                pixels *= s
            self.register_buffer("rate_table", rate_table(d.rate_seed, d.time_steps, pixels))

    def encode(self, x: Tensor) -> tuple[Tensor, bool]:
        """Network input from an integer batch: (tensor, static?)."""
        if self.encoding == Encoding.DIRECT:
            xf = x.to(torch.float32)
            return (xf if self.hardware_aware else xf / self.pixel_max), True
        if self.encoding == Encoding.RATE:
            spk = rate_spikes(x.flatten(1), self.rate_table, self.pixel_max)
            return spk.reshape(self.steps, x.shape[0], *x.shape[1:]), False
        if x.dim() != 5 or x.shape[1] != self.steps:
            raise QsnnError(
                f"events input must be [B, T={self.steps}, C, H, W], got {tuple(x.shape)}"
            )
        return x.to(torch.float32).transpose(0, 1), False

    def forward(self, x: Tensor, record: bool = False) -> Tensor | tuple[Tensor, Trace]:
        """Output spikes [T, B, classes]; with ``record`` also the per-block trace."""
        h, static = self.encode(x)
        trace = Trace([], [])
        for block in self.blocks:
            inp = h if static else h.reshape(-1, *h.shape[2:])
            h, mem = block(inp, self.steps, static=static, record=record)
            static = False
            if record:
                trace.spikes.append(h)
                trace.membranes.append(mem)
        return (h, trace) if record else h


def predict(counts: Tensor) -> Tensor:
    """Argmax of spike counts [B, classes], lowest index on ties."""
    return torch.argmax(counts, dim=1)
