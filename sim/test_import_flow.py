"""NIR in, RTL out: ``qsnn import`` of a small NIR graph, then ``qsnn hw`` and ``qsnn verify``
unchanged, bit-exact with the imported network's golden model.

The graph is written here with ``nir`` alone (as another framework would write it): a
64-24 layer of NIR's own LIF (float weights and bias; reset to 0 after the spike -> the
IR's zero reset) and a 24-10 layer whose neurons are a membrane loop (qsnn's form of the
subtract reset, ``docs/spec.md`` §5 -> the IR's subtract reset). The RTL runs a few digits
test images on Icarus Verilog (no compile step: seconds; skipped with one line without
iverilog); ``README.md`` "Interoperability" gives the whole test split on Verilator.
Prediction agreement with the float network is not under test here (random weights: many
near-ties); ``tests/test_nir_import.py`` checks it on a trained snnTorch network.
"""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest

from qsnn.cli import main
from qsnn.export import serialize
from qsnn.hw import netbench

DT = 1e-4
IMAGES = 6


def _diag(values: np.ndarray) -> nir.Linear:
    return nir.Linear(weight=np.diag(values).astype(np.float32))


def small_graph() -> nir.NIRGraph:
    """Input 64 -> Affine + LIF (24) -> Linear + membrane loop, subtract reset (10)."""
    rng = np.random.default_rng(7)
    n1, n2 = 24, 10
    w1 = rng.normal(0, 0.6, (n1, 64)).astype(np.float32)
    w2 = rng.normal(0.1, 0.8, (n2, n1)).astype(np.float32)
    theta2 = np.full(n2, 1.5)
    nodes = {
        "input": nir.Input({"input": np.array([64])}),
        "fc1": nir.Affine(weight=w1, bias=rng.normal(0, 0.2, n1).astype(np.float32)),
        "lif1": nir.LIF(tau=np.full(n1, 10 * DT), r=np.full(n1, 1.0), v_leak=np.zeros(n1),
                        v_threshold=np.full(n1, 0.1), v_reset=np.zeros(n1)),
        "fc2": nir.Linear(weight=w2),
        "lif2_u": _diag(np.ones(n2)), "lif2_leak": _diag(np.full(n2, 0.875)),
        "lif2": nir.LIF(tau=np.full(n2, DT), r=np.ones(n2), v_leak=np.zeros(n2),
                        v_threshold=theta2, v_reset=np.zeros(n2)),
        "lif2_reset": _diag(-theta2),
        "output": nir.Output({"output": np.array([n2])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2_u"),
             ("lif2_u", "lif2_leak"), ("lif2_leak", "lif2_u"), ("lif2_u", "lif2"),
             ("lif2", "lif2_reset"), ("lif2_reset", "lif2_u"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.skipif(not netbench.icarus_ok(), reason="Icarus Verilog not installed")
def test_imported_graph_runs_bit_exact_on_the_rtl(tmp_path: Path, sim_seed: int) -> None:
    path, build, hw = tmp_path / "small.nir", tmp_path / "build/small", tmp_path / "hw"
    nir.write(path, small_graph())
    assert main(["import", str(path), "--out", str(build), "--calibration", "digits",
                 "--time-steps", "8"]) == 0
    graph = serialize.load(build)
    assert [lif.reset for lif in graph.lifs()] == ["zero", "subtract"]
    assert main(["hw", str(build), "--out", str(hw), "--lanes", "4"]) == 0
    assert main(["verify", str(build), "--hw", str(hw), "--images", str(IMAGES),
                 "--simulator", "icarus", "--seed", str(sim_seed)]) == 0
    rep = json.loads((hw / "sim_report.json").read_text())
    assert rep["images"] == IMAGES and rep["mismatches"] == 0, rep["first_mismatch"]
    counts = np.load(build / "golden/vectors.npz")["counts"][:IMAGES]
    assert counts.sum() > 0 and len({tuple(c) for c in counts}) > 1  # not a silent network
    notes = [layer["reset_note"] for layer in
             json.loads((build / "import_report.json").read_text())["layers"]]
    assert "zero reset" in notes[0] and "subtract reset" in notes[1]
