"""Independent, slow integer reference of docs/spec.md §2, used only by the tests.

Pure Python integers and numpy int64: no torch, no code shared with qsnn.train.
"""

from __future__ import annotations

import numpy as np


def leak_int(u: int, form: str, param: int, frac_bits: int) -> int:
    """shift: U - (U >>> k);  mult: (m * U) >>> F   (Python >> is an arithmetic shift)."""
    if form == "shift":
        return u - (u >> param)
    return (param * u) >> frac_bits


def lif_reference(currents: list[list[int]], theta: list[int], form: str, param: int,
                  frac_bits: int, reset: str) -> tuple[list[list[int]], list[list[int]]]:
    """Scalar LIF over T steps for N neurons; returns (spikes[T][N], membranes[T][N])."""
    n = len(theta)
    u = [0] * n
    spikes, mems = [], []
    for cur in currents:
        s_t, u_t = [], []
        for i in range(n):
            r = 1 if u[i] > theta[i] else 0
            prev = 0 if (reset == "zero" and r) else u[i]
            new = leak_int(prev, form, param, frac_bits) + cur[i]
            if reset == "subtract":
                new -= r * theta[i]
            u[i] = new
            u_t.append(new)
            s_t.append(1 if new > theta[i] else 0)
        spikes.append(s_t)
        mems.append(u_t)
    return spikes, mems


def conv2d_int(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """Integer cross-correlation: x [C,H,W], w [O,C,K,K] -> [O,H',W'] (int64)."""
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # C,H',W',K,K
    return np.einsum("chwij,ocij->ohw", win.astype(np.int64), w.astype(np.int64))


def sum_pool(x: np.ndarray, k: int) -> np.ndarray:
    """Sum over non-overlapping k x k windows of [C,H,W]."""
    c, h, w = x.shape
    return x.reshape(c, h // k, k, w // k, k).sum(axis=(2, 4))
