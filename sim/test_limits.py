"""Designs at the edges of what ``qsnn hw`` accepts compute what the golden model does.

- T = 65,536: a class that spikes at every step counts 65,536, one more than 16 bits
  hold. The readout counters are bits(T) wide (m_counts widened with them), so the
  smallest case of issue 15 (1 input, 2 neurons, W = 0, b = [1, 2], theta = 1, subtract
  reset, no leak: golden counts [65535, 65536], prediction 1) comes out right; with
  16-bit counters the RTL gave [65535, 65535] and prediction 0.
- Event input with ``pixel_max`` > 255: pixel_max plays no part in 0/1 event frames, so
  the design is generated and runs bit-exact.

Both run the free-running bench on Icarus (tiny designs: seconds), skipped with one line
where iverilog is not installed (CI installs it: make icarus).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qsnn.export import golden, serialize
from qsnn.export.ir import LIF, Flatten, Graph, InputEncoder, Linear, Readout
from qsnn.export.runner import assign_widths
from qsnn.hw import cycles, netbench
from qsnn.hw.generate import generate

NO_ICARUS = "Icarus Verilog not installed (apt-get install iverilog)"


def graph(enc: InputEncoder, steps: int, w: np.ndarray, lif: LIF) -> Graph:
    """``[flatten] linear lif readout`` with minimal membrane widths."""
    nodes = [Flatten("flatten0"), Linear("fc0", w.shape[1], w.shape[0], 4, w), lif,
             Readout("readout", w.shape[0])]
    return assign_widths(enc, nodes, "edge", steps, None, {})


def rtl_counts(g: Graph, x: np.ndarray, tmp: Path) -> list[netbench.Result]:
    """Export ``g``, generate its design (P = 1), run the images ``x`` on Icarus."""
    if not netbench.icarus_ok():
        pytest.skip(NO_ICARUS)
    serialize.save(g, tmp / "build")
    generate(tmp / "build", tmp / "hw", lanes=1)
    timeout = 2 * max(cycles.image_cycles(g, 1, torch.from_numpy(x))) + 10_000
    return netbench.run(netbench.bench_design(tmp / "hw"), x, timeout, simulator="icarus")


def test_counts_beyond_16_bits_at_t_65536(tmp_path) -> None:
    """Neuron 0 (b = 1) fires every step but the first, neuron 1 (b = 2) every step."""
    lif = LIF("lif0", (2,), "mult", 256, 8, "subtract", 8, np.ones(2, np.int32),
              np.array([1, 2], np.int32))
    g = graph(InputEncoder("input", "direct", (1, 1, 1), 1), 65_536,
              np.zeros((2, 1), np.int8), lif)
    x = np.zeros((1, 1, 1, 1), np.uint8)
    want = golden.run(g, torch.from_numpy(x)).counts.numpy()
    assert want.tolist() == [[65_535, 65_536]]
    got = rtl_counts(g, x, tmp_path)
    assert [r.counts for r in got] == want.tolist()
    assert [r.prediction for r in got] == [1]


def test_events_with_pixel_max_over_255(tmp_path) -> None:
    rng = np.random.default_rng(3)
    lif = LIF("lif0", (5,), "shift", 2, 8, "subtract", 8, np.full(5, 2, np.int32))
    g = graph(InputEncoder("input", "events", (1, 2, 3), 1000), 5,
              rng.integers(-7, 8, (5, 6)).astype(np.int8), lif)
    x = (rng.random((4, 5, 1, 2, 3)) < 0.5).astype(np.uint8)
    want = golden.run(g, torch.from_numpy(x)).counts.numpy()
    assert want.sum() > 0
    got = rtl_counts(g, x, tmp_path)
    assert [r.counts for r in got] == want.tolist()
    assert [r.prediction for r in got] == np.argmax(want, axis=1).tolist()
