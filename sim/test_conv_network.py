"""Convolutional networks in the RTL against the golden model, and the cycle model
against the RTL, on random small IRs (``qsnn.testing.random_net``; no training).

- Every encoder (direct, rate, events), fused and address-map pooling, conv → conv (packed
  coordinates) and conv → flatten → linear (flat indices), lane counts that do not divide
  the channels: 0 mismatches in the free-running bench, and every image's measured cycles
  (``m_cycles`` less the bench's input gaps) equal to the cycle model.
- One design on Verilator (all its images) and on Icarus; the others on Icarus (4-state,
  no x/z), whose builds take a second.
- Per-layer spike trains and membranes of a traced image equal the golden model's.
- The cycle model is exact on randomly drawn networks (fully connected and conv, any
  encoder, lanes and pooling; drawn from the test seed).
- Membranes in SPRAM (``--membranes spram``: 2 cycles per chunk) on every layer, for
  every encoder, and mixed per layer on random networks: 0 mismatches, the model exact.
- A broken conv weight file, a wrong spike-buffer coordinate mode and a cycle model one
  cycle off are seen.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from qsnn.hw import cycles, netbench
from qsnn.hw.design import LayerParams
from qsnn.hw.generate import generate
from qsnn.hw.verify import compare_trace, verify
from qsnn.testing import random_net, random_spec

NO_ICARUS = "Icarus Verilog not installed (apt-get install iverilog)"
icarus = pytest.mark.skipif(not netbench.icarus_ok(), reason=NO_ICARUS)

NETS = {
    # conv fused → conv as an address map → flatten → fc; 3 lanes on 4 channels, 4 on 6;
    # 6x6 and 3x3 maps (packed coordinates differ from flat indices)
    "direct": dict(spec=[("conv", 4, 3, 1, 2), ("conv", 6, 3, 1, 2), ("fc", 5)],
                   encoding="direct", shape=(1, 12, 12), steps=5, lanes=[3, 4, 2],
                   pool=["fused", "map"], images=24),
    # no padding, pool as an address map, two input channels
    "rate": dict(spec=[("conv", 5, 3, 0, 2), ("fc", 4)], encoding="rate", shape=(2, 6, 6),
                 steps=4, lanes=2, pool="map", images=6),
    # conv fused → conv without pool (kernel 3, padding 2) → fc
    "events": dict(spec=[("conv", 3, 3, 1, 2), ("conv", 4, 3, 2, 1), ("fc", 3)],
                   encoding="events", shape=(2, 8, 8), steps=4, lanes=[2, 3, 2],
                   pool="fused", images=6),
}
#: the same networks with every layer's membranes in SPRAM (qsnn_mem_spram)
NETS.update({f"{name}-spram": dict(cfg, membranes="spram") for name, cfg in list(NETS.items())})


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """``net(name)``: (build, hw) of one of :data:`NETS`, made once."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in made:
            cfg = NETS[name]
            root = tmp_path_factory.mktemp(name)
            random_net(root / "build", spec=cfg["spec"], encoding=cfg["encoding"],
                       shape=cfg["shape"], steps=cfg["steps"], images=cfg["images"], seed=7)
            generate(root / "build", root / "hw", lanes=cfg["lanes"], pool=cfg["pool"],
                     membranes=cfg.get("membranes", "bram"))
            made[name] = (root / "build", root / "hw")
        return made[name]

    return get


def check(rep: dict, images: int) -> None:
    assert rep["images"] == images and rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["cycles_model_exact"] == images, (rep["cycles_model_ratio_min"],
                                                 rep["cycles_model_ratio_max"])


@pytest.mark.parametrize("name", ["direct", "direct-spram"])
def test_direct_conv_network_verilator(net, name, sim_seed) -> None:
    build, hw = net(name)
    rep = verify(build, hw, images=NETS[name]["images"], seed=sim_seed)
    check(rep, NETS[name]["images"])
    assert rep["cycles_bound_ratio"] > 1


@icarus
@pytest.mark.parametrize("name", list(NETS))
def test_conv_network_icarus(net, name, sim_seed) -> None:
    build, hw = net(name)
    images = 2 if name.startswith("direct") else NETS[name]["images"]
    check(verify(build, hw, images=images, seed=sim_seed, simulator="icarus"), images)


def test_traced_conv_layers_equal_golden(net) -> None:
    """Spike trains and membranes of every layer ([T, C, H', W'] in the golden order)."""
    build, hw = net("direct")
    rows = compare_trace(build, hw, 1)
    for r in rows:
        assert r["spikes"]["equal"] and r["membranes"]["equal"], r
    assert all(r["spikes"]["total"] > 0 for r in rows)


@icarus
def test_cycle_model_is_exact_on_random_networks(tmp_path, sim_seed) -> None:
    """Every image's cycles (less the bench's input gaps) equal the model: 4 random
    networks (membranes in block RAM or SPRAM per layer), 3 images each, random input
    gaps and output back-pressure."""
    r = random.Random(sim_seed)
    for n in range(4):
        cfg = random_spec(r)
        build, hw = tmp_path / f"b{n}", tmp_path / f"hw{n}"
        random_net(build, spec=cfg["spec"], encoding=cfg["encoding"], shape=cfg["shape"],
                   steps=cfg["steps"], images=3, seed=r.randrange(1 << 30))
        membranes = [r.choice(["bram", "spram"]) for _ in cfg["spec"]]
        generate(build, hw, lanes=cfg["lanes"], pool=cfg["pool"], membranes=membranes)
        rep = verify(build, hw, images=3, seed=sim_seed + n, simulator="icarus")
        assert rep["mismatches"] == 0, (cfg, rep["first_mismatch"])
        assert rep["cycles_model_exact"] == 3, (cfg, rep["cycles_model_ratio_min"],
                                                rep["cycles_model_ratio_max"])


def _broken_copy(hw: Path, tmp: Path) -> Path:
    out = tmp / "hw"
    shutil.copytree(hw, out, ignore=shutil.ignore_patterns("sim_build", "sim_run"))
    return out


def _bench_mismatches(build: Path, hw: Path, images: int) -> int:
    """Images whose output counts differ from the golden model's in the free-running
    bench (Icarus; no cocotb re-run of the first mismatch: seconds, not a Verilator
    build); a hung design (the bench's timeout) counts every image."""
    vec = np.load(build / "golden" / "vectors.npz")
    try:
        got = netbench.run(netbench.bench_design(hw), vec["inputs"][:images], 20_000,
                           simulator="icarus")
    except netbench.BenchError as exc:
        assert "timeout" in str(exc), exc
        return images
    return sum(r.counts != vec["counts"][r.image].tolist() for r in got)


@icarus
def test_flipped_conv_kernel_is_a_mismatch(net, tmp_path) -> None:
    """Layer 0's weight words with the kernel taps reversed (the kernel flipped, as a
    convolution instead of the spec's cross-correlation): the bench sees mismatches."""
    build, hw = net("direct")
    assert _bench_mismatches(build, hw, 2) == 0
    bad = _broken_copy(hw, tmp_path)
    words = (bad / "l0_w.mem").read_text().split()
    taps = 4 * 4        # fused kernel 3 + 2 - 1, one input channel, G = 2 words per tap
    assert len(words) == taps * 2
    rows = [words[i * 2:(i + 1) * 2] for i in range(taps)]
    (bad / "l0_w.mem").write_text("\n".join(w for row in rows[::-1] for w in row) + "\n")
    assert _bench_mismatches(build, bad, 2) > 0


@icarus
def test_wrong_coordinate_mode_is_a_mismatch(net, tmp_path) -> None:
    """Layer 0's spike buffer emitting flat indices where the conv layer 1 expects packed
    {c, y, x}: mismatches, or the bench's timeout (a flat index read as {c, y, x} can name
    a column past the map, whose empty position range wraps the engine's counters into a
    walk of thousands of chunks; the producers never emit such a coordinate)."""
    build, hw = net("direct")
    bad = _broken_copy(hw, tmp_path)
    top = (bad / "qsnn_top.v").read_text()
    assert top.count(".COORD(1)") == 1
    (bad / "qsnn_top.v").write_text(top.replace(".COORD(1)", ".COORD(0)"))
    assert _bench_mismatches(build, bad, 2) > 0


@icarus
def test_a_cycle_model_one_cycle_off_is_seen(net, monkeypatch) -> None:
    """The exactness check can fail: with the readout's overhead one cycle too long in
    the model, no image is exact and the ratio drops below 1."""
    build, hw = net("rate")
    monkeypatch.setattr(cycles, "O_END", cycles.O_END + 1)
    rep = verify(build, hw, images=2, simulator="icarus")
    assert rep["mismatches"] == 0 and rep["cycles_model_exact"] == 0
    assert rep["cycles_model_ratio_max"] < 1


@icarus
@pytest.mark.parametrize("broken", ["no-wait", "one-cycle-chunks"])
def test_a_cycle_model_ignoring_spram_is_seen(net, monkeypatch, broken) -> None:
    """The SPRAM terms of the model are needed: without the free + 1 wait, or with one
    cycle per chunk, images of the SPRAM networks are no longer exact."""
    if broken == "no-wait":
        monkeypatch.setattr(cycles, "_spram_wait", lambda a, free, spram: a)
    else:
        monkeypatch.setattr(LayerParams, "chunk_cycles", property(lambda p: 1))
    inexact = 0
    for name in ("direct-spram", "events-spram"):
        build, hw = net(name)
        rep = verify(build, hw, images=2, simulator="icarus")
        assert rep["mismatches"] == 0
        inexact += 2 - rep["cycles_model_exact"]
    assert inexact > 0
