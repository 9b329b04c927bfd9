"""The board host runtime (``qsnn.hw.host``) against a pseudo-terminal peer (no simulator).

The peer thread plays the board's command protocol (``qsnn_uart_top``): ``'?'`` answers
the design id and the weights-loaded flag, ``'W'`` takes ``weight_bytes`` bytes and
acknowledges, ``'I'`` takes ``input_bytes`` bytes and answers with the golden model's
prediction for exactly those bytes (or stays silent, or answers garbage).
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
import tty

import numpy as np
import pytest
import torch

from qsnn.errors import QsnnError
from qsnn.export import golden, serialize
from qsnn.export.ir import Graph, Leak
from qsnn.hw import host
from qsnn.hw.generate import generate, ir_sha256
from qsnn.testing import Fc, int_weights, network, pixels, save_ir, small_mlp

IMAGES = 12


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    root = tmp_path_factory.mktemp("host")
    x = pixels(images=IMAGES, shape=(1, 3, 4))
    want = golden.run(small_mlp(), x).predictions.numpy()
    labels = want.copy()
    labels[::3] = (labels[::3] + 1) % 3  # golden accuracy 2/3 (8 of 12)
    save_ir(small_mlp(), root / "build", inputs=x, labels=labels)
    return root / "build"


def digits_graph() -> Graph:
    """A tiny untrained network with the digits dataset's input shape (1, 8, 8)."""
    rng = np.random.default_rng(1)
    w0, w1 = int_weights(rng, (8, 64)), int_weights(rng, (10, 8))
    layers = [Fc(weight=w0, theta=np.int32(40), leak=Leak.SHIFT, leak_param=3, membrane_bits=16),
              Fc(weight=w1, theta=np.int32(6), leak=Leak.SHIFT, leak_param=3, membrane_bits=12)]
    return network(layers=layers, shape=(1, 8, 8), pixel_max=16, name="d",
                   metadata={"dataset": "digits"})


class Peer:
    """A fake board on a pty: ``mode`` golden | silent | bad | wrong_even | wrong_id;
    ``weight_bytes`` > 0: a design with run-time weights (not loaded at start)."""

    def __init__(self, graph: Graph, mode: str = "golden", ir_id: int = 0,
                 weight_bytes: int = 0) -> None:
        self.graph, self.mode = graph, mode
        self.nbytes = host.input_bytes(graph)
        self.ir_id = ir_id ^ (1 if mode == "wrong_id" else 0)
        self.weight_bytes = weight_bytes
        self.loaded = weight_bytes == 0
        self.weights: list[bytes] = []
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo / line editing even before pyserial configures it
        self.port = os.ttyname(self.slave)
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _answer(self, data: bytes) -> int:
        shape = ((self.graph.time_steps,) if self.graph.input.encoding == "events" else ()) \
            + tuple(self.graph.input.shape)
        x = torch.from_numpy(np.frombuffer(data, np.uint8).reshape(1, *shape).copy())
        pred = int(golden.run(self.graph, x).predictions[0])
        if self.mode == "bad":
            return self.graph.classes  # one past the last class
        if self.mode == "wrong_even" and (len(self.received) - 1) % 2 == 0:  # images 0, 2, ..
            return (pred + 1) % self.graph.classes
        return pred

    def _run(self) -> None:
        buf = b""
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                buf += os.read(self.master, 4096)
            except OSError:
                return
            while buf:
                cmd = buf[0]
                if cmd == host.CMD_INFO:
                    buf = buf[1:]
                    if self.mode != "silent":
                        os.write(self.master, self.ir_id.to_bytes(4, "big")
                                 + bytes([int(self.loaded)]))
                elif cmd == host.CMD_WEIGHTS:
                    if len(buf) < 1 + self.weight_bytes:
                        break
                    self.weights.append(buf[1 : 1 + self.weight_bytes])
                    buf = buf[1 + self.weight_bytes :]
                    self.loaded = True
                    os.write(self.master, bytes([host.CMD_WEIGHTS]))
                elif cmd == host.CMD_IMAGE:
                    if len(buf) < 1 + self.nbytes:
                        break
                    data, buf = buf[1 : 1 + self.nbytes], buf[1 + self.nbytes :]
                    self.received.append(data)
                    if self.mode != "silent":
                        os.write(self.master, bytes([self._answer(data)]))
                else:  # the board ignores other command bytes
                    buf = buf[1:]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def peer(ir):
    made: list[Peer] = []

    def make(mode: str = "golden", graph: Graph | None = None, build=None,
             weight_bytes: int = 0) -> Peer:
        ir_id = host.design_id(ir_sha256(build or ir))
        made.append(Peer(graph or serialize.load(build or ir), mode, ir_id, weight_bytes))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_encode_image_bytes() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    assert host.encode_image(img, "direct") == bytes(range(12))
    assert host.encode_image(torch.from_numpy(img), "rate") == bytes(range(12))
    assert host.encode_image(np.array([[0, 255]], np.int64), "direct") == b"\x00\xff"
    assert host.encode_image(np.array([[2.0, 3.0]]), "direct") == b"\x02\x03"
    ev = np.zeros((3, 1, 2, 2), np.uint8)  # T=3 frames of 4 bytes: frame-major, row-major
    ev[0, 0, 0, 1] = ev[2, 0, 1, 0] = 1
    assert host.encode_image(ev, "events") == bytes([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    assert host.encode_image(ev.astype(bool), "events") == host.encode_image(ev, "events")
    # non-contiguous input: still row-major of the logical array
    t = np.arange(6, dtype=np.uint8).reshape(2, 3).T
    assert host.encode_image(t, "direct") == bytes([0, 3, 1, 4, 2, 5])


@pytest.mark.parametrize(("x", "enc", "match"), [
    (np.array([0, 256]), "direct", "0..255"),
    (np.array([-1, 3]), "rate", "0..255"),
    (np.array([0, 2]), "events", "0/1"),
    (np.array([0.5]), "direct", "integers"),
    (np.array([1]), "spikes", "unknown input encoding"),
    (np.zeros(0), "direct", "empty"),
])
def test_encode_image_refuses(x, enc, match) -> None:
    with pytest.raises(QsnnError, match=match):
        host.encode_image(x, enc)


def test_bytes_on_the_wire_match_golden_inputs(ir, peer) -> None:
    p = peer()
    host.run_on_port(p.port, ir, images=5, timeout_s=2)
    vec = np.load(ir / "golden/vectors.npz")
    assert p.received == [vec["inputs"][i].tobytes() for i in range(5)]
    assert all(len(b) == 12 for b in p.received)


def test_run_on_port_reports(ir, peer, capsys) -> None:
    p = peer()
    rep = host.run_on_port(p.port, ir, images=IMAGES, baud=9600, timeout_s=2)
    assert rep["images"] == IMAGES and len(p.received) == IMAGES
    assert rep["agreement"] == 1.0 and rep["mismatches"] == []
    assert rep["accuracy"] == pytest.approx(8 / 12) == rep["golden_accuracy"]
    assert rep["images_per_second"] > 0 and rep["seconds"] > 0
    assert rep["port"] == p.port and rep["baud"] == 9600
    assert rep["uart_limit_images_per_second"] == pytest.approx(9600 / (10 * 14))
    assert rep["weights_bytes_sent"] == 0
    assert set(rep) >= {"images", "accuracy", "agreement", "images_per_second", "port", "baud"}
    out = capsys.readouterr().out
    assert "accuracy 66.67%" in out and "agreement" in out and "images/s" in out


def test_disagreement_is_counted(ir, peer) -> None:
    p = peer("wrong_even")  # images 0, 2, 4 answered with the wrong class
    rep = host.run_on_port(p.port, ir, images=6, timeout_s=2)
    assert rep["agreement"] == pytest.approx(0.5)
    assert rep["mismatches"] == [0, 2, 4]


def test_more_images_than_vectors_use_the_test_split(tmp_path, peer) -> None:
    from qsnn.data import load_dataset

    test = load_dataset("digits").test
    build = tmp_path / "build"
    save_ir(digits_graph(), build, inputs=test.x[:3], labels=test.y[:3].numpy())
    p = peer(build=build)
    rep = host.run_on_port(p.port, build, images=10, timeout_s=2)
    assert rep["images"] == 10 and rep["agreement"] == 1.0
    assert p.received == [test.x[i].numpy().tobytes() for i in range(10)]


def test_missing_port(ir, tmp_path) -> None:
    missing = str(tmp_path / "ttyNOPE0")
    with pytest.raises(QsnnError, match=f"serial port {re.escape(missing)} does not exist"):
        host.run_on_port(missing, ir, images=2)


def test_port_cannot_be_opened(ir, tmp_path) -> None:
    notatty = tmp_path / "plain-file"
    notatty.write_text("")
    with pytest.raises(QsnnError, match=f"cannot open serial port {re.escape(str(notatty))}"):
        host.run_on_port(str(notatty), ir, images=2)


def test_silent_peer_times_out_quickly(ir, peer) -> None:
    p = peer("silent")
    t0 = time.perf_counter()
    with pytest.raises(QsnnError, match=f"no answer from {p.port} to the info request after "
                                        ".* s: is the board programmed"):
        host.run_on_port(p.port, ir, images=3, timeout_s=0.3)
    assert time.perf_counter() - t0 < 2
    assert len(p.received) == 0  # no image without an answer to the info request


def test_bad_prediction_byte(ir, peer) -> None:
    p = peer("bad")
    with pytest.raises(QsnnError, match=r"answered 3 \(0x03\) for image 0: outside the class "
                                        r"range 0\.\.2"):
        host.run_on_port(p.port, ir, images=3, timeout_s=2)


def test_bad_arguments(ir) -> None:
    with pytest.raises(QsnnError, match="--images 0"):
        host.run_on_port("/dev/null", ir, images=0)
    with pytest.raises(QsnnError, match="no IR"):
        host.run_on_port("/dev/null", ir / "nothing", images=2)


def test_wrong_design_on_the_board(ir, peer) -> None:
    p = peer("wrong_id")
    with pytest.raises(QsnnError, match=f"the board at {re.escape(p.port)} runs design "
                                        "[0-9a-f]{8}, the IR in .* is [0-9a-f]{8}: program"):
        host.run_on_port(p.port, ir, images=2, timeout_s=2)
    assert p.received == []


def test_runtime_weights_are_loaded_once(ir, peer, tmp_path) -> None:
    """A design generated with --runtime-weights: the host sends weights.bin when the board
    says they are missing (and again only when asked to)."""
    hw = tmp_path / "hw"
    params = generate(ir, hw, lanes=2, runtime_weights=(0,))
    blob = (hw / "weights.bin").read_bytes()
    assert len(blob) == params["weight_bytes"] > 0
    p = peer(weight_bytes=len(blob))
    rep = host.run_on_port(p.port, ir, images=4, timeout_s=2, hw_dir=hw)
    assert p.weights == [blob] and rep["weights_bytes_sent"] == len(blob)
    assert rep["agreement"] == 1.0 and len(p.received) == 4
    rep = host.run_on_port(p.port, ir, images=2, timeout_s=2, hw_dir=hw)
    assert len(p.weights) == 1 and rep["weights_bytes_sent"] == 0     # already loaded
    host.run_on_port(p.port, ir, images=1, timeout_s=2, hw_dir=hw, load_weights=True)
    assert len(p.weights) == 2


def test_runtime_weights_missing(ir, peer, tmp_path) -> None:
    p = peer(weight_bytes=10)
    with pytest.raises(QsnnError, match="holds no generated design: pass --hw"):
        host.run_on_port(p.port, ir, images=1, timeout_s=2, hw_dir=tmp_path / "nothing")
    generate(ir, tmp_path / "rom", lanes=2)   # ROM design: no weights.bin
    with pytest.raises(QsnnError, match="has no weights.bin"):
        host.run_on_port(p.port, ir, images=1, timeout_s=2, hw_dir=tmp_path / "rom")
