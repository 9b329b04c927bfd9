"""The rate-encoding LFSR, shared by training, the golden model and the RTL.

A 32-bit Galois LFSR with feedback polynomial x^32 + x^22 + x^2 + x + 1
(tap mask ``0x80200003``, maximal length 2^32 - 1). One step::

    out  = s & 1
    s    = s >> 1
    s    = s ^ 0x80200003   if out == 1

The state is re-seeded with ``seed`` at the start of every image. For time step
t and input pixel j (row-major over C, H, W, P pixels per frame), the LFSR is
stepped once and ``r[t, j]`` is the low byte of the new state (step number
t * P + j + 1). The input spike is::

    x_j[t] = 1  if  r[t, j] * pixel_max < p_j * 256  else 0

so a pixel at ``pixel_max`` always fires and a zero pixel never does; the firing
probability is ceil(256 * p / pixel_max) / 256.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

TAPS = 0x80200003
MASK32 = 0xFFFFFFFF


def step(state: int) -> int:
    """One Galois LFSR step of a 32-bit state."""
    out = state & 1
    state >>= 1
    return state ^ TAPS if out else state


@functools.lru_cache(maxsize=16)
def _bytes(seed: int, count: int) -> bytes:
    if not 0 < seed <= MASK32:
        raise ValueError(f"LFSR seed must be in 1..2^32-1, got {seed}")
    s = seed
    out = bytearray(count)
    for i in range(count):
        out_bit = s & 1
        s >>= 1
        if out_bit:
            s ^= TAPS
        out[i] = s & 0xFF
    return bytes(out)


def rate_table(seed: int, time_steps: int, pixels: int) -> torch.Tensor:
    """Low bytes ``r[t, j]`` as a uint8 tensor of shape [time_steps, pixels]."""
    buf = np.frombuffer(_bytes(seed, time_steps * pixels), dtype=np.uint8)
    return torch.from_numpy(buf.copy()).reshape(time_steps, pixels)


def rate_spikes(pixels: torch.Tensor, table: torch.Tensor, pixel_max: int) -> torch.Tensor:
    """Rate-encode integer images.

    pixels: [B, P] integers 0..pixel_max; table: [T, P] from :func:`rate_table`.
    Returns [T, B, P] spikes (same dtype as float32), ``r * pixel_max < p * 256``.
    """
    lhs = table.to(torch.int32).unsqueeze(1) * pixel_max
    rhs = pixels.to(torch.int32).unsqueeze(0) * 256
    return (lhs < rhs).to(torch.float32)
