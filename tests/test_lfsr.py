"""The rate-encoding LFSR: hand-checked steps and the spike rule."""

from __future__ import annotations

import torch

from qsnn.lfsr import TAPS, rate_spikes, rate_table, step


def test_galois_steps_by_hand() -> None:
    assert step(2) == 1  # even: plain shift
    assert step(1) == TAPS  # odd: shift then xor taps
    assert step(3) == 1 ^ TAPS
    table = rate_table(0xACE1, 2, 3).flatten().tolist()
    s, want = 0xACE1, []
    for _ in range(6):
        s = (s >> 1) ^ (TAPS if s & 1 else 0)
        want.append(s & 0xFF)
    assert table == want


def test_period_is_not_short() -> None:
    s, seen = 1, set()
    for _ in range(100000):
        s = step(s)
        assert s != 1 and s != 0
        seen.add(s)
    assert len(seen) == 100000


def test_rate_spike_rule() -> None:
    table = rate_table(0xACE1, 200, 4)
    pixels = torch.tensor([[0, 16, 8, 4]], dtype=torch.uint8)
    spk = rate_spikes(pixels, table, 16)
    assert spk.shape == (200, 1, 4)
    assert spk[:, 0, 0].sum() == 0 and spk[:, 0, 1].sum() == 200
    rate = spk[:, 0, 2].mean().item()
    assert 0.38 < rate < 0.62
    want = (table[:, 3].long() * 16 < 4 * 256).float()
    assert torch.equal(spk[:, 0, 3], want)
