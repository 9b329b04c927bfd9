"""``qsnn import``: a network trained and exported by snnTorch (``export_to_nir``) becomes
an IR whose integer golden model agrees with the float NIR network; qsnn's own model.nir
comes back bit for bit; bad files get one line and nothing is written."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from nir_consumers import one_thread
from qsnn_testutil import ROOT, TINY

from qsnn import config
from qsnn.cli import main
from qsnn.data import load_dataset
from qsnn.errors import QsnnError
from qsnn.export import golden, nir_interp, serialize
from qsnn.export.import_runner import import_nir
from qsnn.export.runner import export
from qsnn.train.runner import train

STEPS = 10


def snntorch_digits_net() -> nir.NIRGraph:
    """A 64-48-10 snnTorch network (zero reset, as NIR) trained on digits for a few seconds,
    exported with snnTorch's own ``export_to_nir``."""
    import snntorch as snn
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    data = load_dataset("digits")
    x, y = data.train.x.float() / 16, data.train.y
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 48),
        snn.Leaky(beta=torch.full((48,), 0.9), threshold=torch.ones(48), init_hidden=True,
                  reset_mechanism="zero", reset_delay=False),
        torch.nn.Linear(48, 10),  # per-neuron parameters: snnTorch exports scalars untyped
        snn.Leaky(beta=torch.full((10,), 0.9), threshold=torch.ones(10), init_hidden=True,
                  reset_mechanism="zero", reset_delay=False))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(4):
        for i in range(0, len(x), 64):
            utils.reset(net)
            counts = sum(net(x[i:i + 64]) for _ in range(STEPS))
            loss = torch.nn.functional.cross_entropy(counts, y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with contextlib.redirect_stdout(io.StringIO()):
        return export_to_nir(net.eval(), x[:1], ignore_dims=[0])


def norse_li_net() -> nir.NIRGraph:
    """A 64-48-10 Norse network, LIF box cells and an LI readout (prediction: argmax of its
    membrane after the last step), trained on digits for a second and exported with
    Norse's ``to_nir`` at dt = 1e-3. Norse 1.1 writes scalar parameters, which ``nir.write``
    refuses (made per-neuron arrays here, as a user must), and tau = dt / tau_mem_inv
    (dt times the time constant: the file imports with ``--dt`` dt^2 = 1e-6)."""
    import norse.torch as nt

    torch.manual_seed(0)
    data = load_dataset("digits")
    x, y = data.train.x.float().reshape(-1, 64) / 16, data.train.y
    net = nt.SequentialState(torch.nn.Linear(64, 48), nt.LIFBoxCell(), torch.nn.Linear(48, 10),
                             nt.LIBoxCell())
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(6):
        for i in range(0, len(x), 64):
            state = None
            for _ in range(STEPS):
                out, state = net(x[i:i + 64], state)
            loss = torch.nn.functional.cross_entropy(out * 5, y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return per_neuron(nt.to_nir(net.eval(), x[:1], dt=1e-3))


def per_neuron(g: nir.NIRGraph) -> nir.NIRGraph:
    """``g`` with scalar neuron parameters broadcast to their layer's size (numpy)."""
    sizes = {b: np.asarray(g.nodes[a].weight).shape[0] for a, b in g.edges
             if hasattr(g.nodes[a], "weight")}
    nodes = {}
    for key, n in g.nodes.items():
        if isinstance(n, (nir.LIF, nir.LI)):
            full = lambda v, k=key: np.full(sizes[k], float(np.asarray(v)))  # noqa: E731
            extra = {"v_threshold": full(n.v_threshold)} if isinstance(n, nir.LIF) else {}
            n = type(n)(tau=full(n.tau), r=full(n.r), v_leak=full(n.v_leak), **extra)
        elif isinstance(n, nir.Affine):
            n = nir.Affine(weight=np.asarray(n.weight), bias=np.asarray(n.bias))
        nodes[key] = n
    return nir.NIRGraph(nodes=nodes, edges=g.edges, type_check=False)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def snn_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("snn") / "model.nir"
    nir.write(path, snntorch_digits_net())
    return path


def test_snntorch_network_imports_within_a_point(snn_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported"
    rep = import_nir(snn_file, out, calibration="digits", time_steps=STEPS)
    t = rep["test"]
    print(rep["layers"], t)
    assert t["images"] == 360 and t["float_accuracy"] > 0.85
    assert t["integer_accuracy"] >= t["float_accuracy"] - 0.01
    assert t["agreement"] >= 0.95
    graph = serialize.load(out)  # validated IR, golden vectors, report
    assert [n.op for n in graph.nodes] == ["flatten", "linear", "lif", "linear", "lif",
                                           "readout"]
    assert all(lif.reset == "zero" and lif.leak == "mult" for lif in graph.lifs())
    vec = np.load(out / "golden/vectors.npz")
    assert np.array_equal(golden.run(graph, torch.from_numpy(vec["inputs"])).counts.numpy(),
                          vec["counts"])
    assert (out / "import_report.json").is_file()
    before = (out / "model.json").read_bytes()
    import_nir(snn_file, out, calibration="digits", time_steps=STEPS)   # replaces its own
    assert (out / "model.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported"]   # no staging left


def test_refuses_the_input_s_own_folder(snn_file: Path, capsys) -> None:
    code = main(["import", str(snn_file), "--out", str(snn_file.parent), "--calibration",
                 "digits", "--time-steps", "4"])
    assert code == 2 and "contains the input" in capsys.readouterr().err
    assert sorted(p.name for p in snn_file.parent.iterdir()) == ["model.nir"]


def test_norse_li_readout_imports(tmp_path: Path) -> None:
    """An LI readout becomes a subtract-reset LIF whose threshold the calibration chose:
    the best of its candidates, far better than the worst; spike counts rate-decode the
    membrane (8 bits: the readout's approximation, not the weights, is under test)."""
    path = tmp_path / "norse.nir"
    nir.write(path, norse_li_net())
    rep = import_nir(path, tmp_path / "li", bits=8, calibration="digits", time_steps=STEPS,
                     dt=1e-6)
    t, readout = rep["test"], rep["layers"][-1]
    scores = readout["readout_calibration"]["agreement"]
    print(t, scores)
    assert t["float_accuracy"] > 0.85 and t["agreement"] >= 0.93
    assert t["exact_count_agreement"] is None
    assert readout["reset"] == "subtract" and "readout" in readout["reset_note"]
    chosen = scores[f"{readout['readout_theta']:.6g}"]
    assert chosen == max(scores.values()) and min(scores.values()) < chosen - 0.3
    lif = serialize.load(tmp_path / "li").lifs()[-1]
    assert lif.reset == "subtract" and lif.shape == (10,)


def test_li_readout_membrane_is_the_euler_integral() -> None:
    """Reference interpreter, LI output: v after T steps of constant input I is
    g I (1 - beta^T) / (1 - beta), g = dt r / tau, beta = 1 - dt / tau; I: dt r I T."""
    dt, tau, r, steps = 1e-4, 4e-4, 2.0, 7
    i = torch.tensor([[0.5, -1.0, 3.0]], dtype=torch.float64)
    li = nir.LI(tau=np.full(3, tau), r=np.full(3, r), v_leak=np.zeros(3))
    got = nir_interp.run([("li", li)], i, steps, dt)
    beta, g = 1 - dt / tau, dt * r / tau
    assert torch.allclose(got, g * i * (1 - beta ** steps) / (1 - beta))
    got_i = nir_interp.run([("i", nir.I(r=np.full(3, r)))], i, steps, dt)
    assert torch.allclose(got_i, dt * r * i * steps)


def test_reference_interpreter_equals_snntorch(snn_file: Path) -> None:
    """The float reference (NIR spec, Euler) and snnTorch's importer agree exactly."""
    from nir_consumers import snntorch_counts

    g = nir.read(snn_file)
    x = load_dataset("digits").test.x[:40].float() / 16
    want = snntorch_counts(g, x, STEPS)
    got = nir_interp.run(nir_interp.chain(g), x.reshape(40, -1), STEPS, 1e-4)
    assert torch.equal(got.round().long(), want) and int(want.sum()) > 0


def test_qsnn_model_nir_round_trips_bit_for_bit(tmp_path: Path) -> None:
    cfg = config.apply_overrides(config.load(ROOT / "configs/digits.yaml"),
                                 TINY + ["model.bias=true", "name=rt"])
    train(cfg, tmp_path / "run")
    export(tmp_path / "run", tmp_path / "rt", vectors=8, qonnx=False)
    assert main(["import", str(tmp_path / "rt/model.nir"), "--out",
                 str(tmp_path / "back/rt")]) == 0
    for name in ("model.json", "weights.npz"):
        assert (tmp_path / "rt" / name).read_bytes() == (tmp_path / "back/rt" / name).read_bytes()


def _graph(*nodes: nir.NIRNode, edges=None) -> nir.NIRGraph:
    names = ["input", *[f"n{i}" for i in range(len(nodes))], "output"]
    shape = np.array([64])
    all_nodes = {"input": nir.Input({"input": shape}),
                 **{f"n{i}": n for i, n in enumerate(nodes)},
                 "output": nir.Output({"output": np.array([10])})}
    return nir.NIRGraph(all_nodes, edges or list(zip(names[:-1], names[1:], strict=True)),
                        type_check=False)


def _lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n),
                   v_threshold=np.ones(n))


def _loop(leak: np.ndarray | None = None, reset: float = -1.0, tau: float = 1e-4
          ) -> nir.NIRGraph:
    """Linear -> membrane loop (subtract reset, theta 1), optionally malformed."""
    eye = np.eye(10, dtype=np.float32)
    nodes = {"input": nir.Input({"input": np.array([64])}), "fc": nir.Linear(W),
             "l_u": nir.Linear(eye), "l_leak": nir.Linear(0.9 * eye if leak is None else leak),
             "l": nir.LIF(tau=np.full(10, tau), r=np.ones(10), v_leak=np.zeros(10),
                          v_threshold=np.ones(10)),
             "l_reset": nir.Linear(reset * eye), "output": nir.Output({"output": np.array([10])})}
    edges = [("input", "fc"), ("fc", "l_u"), ("l_u", "l_leak"), ("l_leak", "l_u"),
             ("l_u", "l"), ("l", "l_reset"), ("l_reset", "l_u"), ("l", "output")]
    return nir.NIRGraph(nodes, edges, type_check=False)


W = np.ones((10, 64), np.float32)
OFF_DIAGONAL = 0.9 * np.eye(10, dtype=np.float32) + np.eye(10, k=1, dtype=np.float32) * 0.1
BAD = {
    "loop-leak": (_loop(leak=OFF_DIAGONAL), "'l': the leak of a membrane loop must be diagonal"),
    "loop-beta": (_loop(leak=np.diag(np.linspace(0.5, 0.9, 10)).astype(np.float32)),
                  "'l': the leak of a membrane loop must be one beta"),
    "loop-reset": (_loop(reset=-0.5), "'l': the reset of a membrane loop must subtract"),
    "loop-tau": (_loop(tau=2e-4), "'l': the neuron of a membrane loop must be a LIF with tau"),
    "cuba": (_graph(nir.Linear(W), nir.CubaLIF(tau_syn=np.ones(10), tau_mem=np.ones(10),
                                               r=np.ones(10), v_leak=np.zeros(10),
                                               v_threshold=np.ones(10))),
             "'n1': synaptic current"),
    "delay": (_graph(nir.Linear(W), nir.Delay(np.ones(10)), _lif(10)), "'n1': delays"),
    "stride": (_graph(nir.Conv2d((8, 8), np.ones((2, 1, 3, 3)), 2, 0, 1, 1, np.zeros(2)),
                      _lif(10)), "'n0': stride (2, 2)"),
    "li-hidden": (_graph(nir.Linear(np.ones((10, 64), np.float32)),
                         nir.LI(tau=np.full(10, 1e-3), r=np.ones(10), v_leak=np.zeros(10)),
                         nir.Linear(np.ones((10, 10), np.float32)), _lif(10)),
                  "'n1': a non-spiking LI/I passes real values"),
    "recurrent": (_graph(nir.Linear(W), _lif(10), edges=[
        ("input", "n0"), ("n0", "n1"), ("n1", "n0"), ("n1", "output")]),
        "2 successors"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unmappable_graphs_get_one_line(case: str, tmp_path: Path, capsys) -> None:
    graph, words = BAD[case]
    path = tmp_path / "bad.nir"
    nir.write(path, graph)
    out = tmp_path / "out"
    code = main(["import", str(path), "--out", str(out), "--calibration", "digits",
                 "--time-steps", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.nir"]


@pytest.mark.parametrize("content", [b"not a NIR file at all", "truncate"])
def test_not_nir_or_truncated_gets_one_line(content, snn_file: Path, tmp_path: Path,
                                           capsys) -> None:
    path = tmp_path / "m.nir"
    data = snn_file.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    code = main(["import", str(path), "--out", str(tmp_path / "out"), "--calibration",
                 "digits", "--time-steps", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a readable NIR file" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]


def test_refuses_to_replace_a_foreign_folder(snn_file: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/notes.txt").write_text("mine")
    code = main(["import", str(snn_file), "--out", str(tmp_path / "out"), "--calibration",
                 "digits", "--time-steps", "4"])
    assert code == 2 and "refusing to replace" in capsys.readouterr().err
    assert (tmp_path / "out/notes.txt").read_text() == "mine"


def test_interpreter_rejects_zero_time_steps():
    """run() with no step used to return None (mypy: Tensor | None); now one error line."""
    with pytest.raises(QsnnError, match="0 time steps"):
        nir_interp.run([("i", nir.I(r=np.ones(3)))], torch.zeros(2, 3), 0, 1e-4)
