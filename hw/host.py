"""Host runtime for a board running ``qsnn_uart_top`` (``docs/hardware.md``, UART wrapper).

Protocol (8N1; the board's ``CLKS_PER_BIT`` = clock / baud), one command at a time, the
host waiting for each answer (the board buffers one byte):

- ``'?'`` (:func:`info_request`) -> 5 bytes: the design id (the first 4 bytes of the IR's
  SHA-256) and a status byte, bit 0 = weights loaded (:func:`parse_info`);
- ``'W'`` + ``weights.bin`` (:func:`weights_request`) -> ``'W'`` once written: designs
  generated with ``qsnn hw --runtime-weights`` keep those layers' weights in RAM (iCE40
  SPRAM) that the bitstream cannot initialise;
- ``'I'`` + the image, ``params.json`` ``input_bytes`` bytes (:func:`image_request`,
  :func:`encode_image`) -> 1 byte, the prediction.

There is no resynchronisation inside a command: after an aborted transfer (a partial
image left in the board) reset the board before the next run.

:func:`run_on_port` checks the design id against the IR, loads the weights when the board
says they are missing, streams test images of the IR's dataset (the golden vectors in
``<build>/golden/vectors.npz``, or the dataset's test split when more images are asked
for), measures accuracy, agreement with the golden model and throughput including the
UART time, and prints a summary.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from qsnn.errors import QsnnError
from qsnn.export.ir import Encoding
from qsnn.hw.cores import localparam
from qsnn.hw.design import WEIGHTS_FILE, Design, design_id, input_bytes, ir_sha256

DEFAULT_TIMEOUT_S = 5.0
BITS_PER_BYTE = 10  # 8N1: start, 8 data, stop
#: the command bytes, read from qsnn_uart_top.v (the board's side of the protocol)
CMD_IMAGE, CMD_WEIGHTS, CMD_INFO = (localparam("qsnn_uart_top.v", k)
                                    for k in ("CMD_IMAGE", "CMD_WEIGHTS", "CMD_INFO"))
INFO_BYTES = 5


def image_request(frame: bytes) -> bytes:
    """The bytes that classify one encoded image: ``'I'`` + the frame."""
    return bytes([CMD_IMAGE]) + bytes(frame)


def weights_request(blob: bytes) -> bytes:
    """The bytes that load the run-time weights: ``'W'`` + ``weights.bin``."""
    return bytes([CMD_WEIGHTS]) + bytes(blob)


def info_request() -> bytes:
    """The bytes that ask for the design id and status: ``'?'``."""
    return bytes([CMD_INFO])


def parse_info(reply: bytes) -> tuple[int, bool]:
    """(design id, weights loaded) from the 5-byte answer to ``'?'``."""
    if len(reply) != INFO_BYTES:
        raise QsnnError(f"info answer has {len(reply)} bytes, want {INFO_BYTES}")
    return int.from_bytes(reply[:4], "big"), bool(reply[4] & 1)


def encode_image(x: Any, encoding: str) -> bytes:
    """The exact bytes the host sends for one input.

    ``direct``/``rate``: the image's pixels (0..255) in row-major (C, H, W) order;
    ``events``: T frames of 0/1 bytes, frame 0 first, each row-major. ``x`` is an array
    (numpy, torch or nested lists) of integer values.
    """
    if encoding not in Encoding.values():
        raise QsnnError(f"unknown input encoding {encoding!r}; choose one of: "
                        f"{', '.join(Encoding.values())}")
    a = np.asarray(x)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.size == 0:
        raise QsnnError("encode_image: empty input")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)) \
                or not np.all(a == np.floor(a)):
            raise QsnnError(f"encode_image: input values must be integers (got {a.dtype})")
    top = 1 if encoding == Encoding.EVENTS else 255
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > top:
        what = ("event frames must hold 0/1" if encoding == Encoding.EVENTS
                else "pixels must be 0..255")
        raise QsnnError(f"encode_image: values {lo:g}..{hi:g} out of range ({what})")
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes(order="C")


def _open(port: str, baud: int, timeout: float):
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout,
                                     write_timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        err = getattr(exc, "errno", None)
        missing = err == errno.ENOENT or (
            "://" not in port and os.sep in port and not os.path.exists(port))
        if missing:
            raise QsnnError(f"serial port {port} does not exist (list the ports with "
                            "python -m serial.tools.list_ports)") from None
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if err == errno.EACCES:
            reason += " (on Linux: add your user to the dialout group)"
        raise QsnnError(f"cannot open serial port {port}: {reason}") from None


def run_on_port(port: str, build_dir: str | Path, images: int | None = 64,
                baud: int = 115200, timeout_s: float = DEFAULT_TIMEOUT_S,
                hw_dir: str | Path | None = None, load_weights: bool = False
                ) -> dict[str, Any]:
    """Classify ``images`` test images (None: the dataset's whole test split) on the board
    at ``port`` and compare with the golden model of the IR in ``build_dir``.

    First the board's design id must equal the IR's; when the board reports its run-time
    weights missing (or ``load_weights``), ``weights.bin`` of ``hw_dir`` (default
    ``hw/build/<build name>``) is sent.

    ``timeout_s``: how long to wait for each prediction once its image is sent (the
    image's transmission time at ``baud`` is added). Prints a summary; returns
    ``images``, ``accuracy``, ``agreement`` (fraction of predictions equal to the golden
    model's), ``images_per_second`` (wall clock over the whole run, UART included),
    ``port``, ``baud``, plus ``golden_accuracy``, ``mismatches`` (indices of images
    where the board disagrees with the golden model), ``seconds`` and
    ``uart_limit_images_per_second`` (the UART's bound: baud / (10 · (input_bytes + 1))).
    """
    from qsnn.export import serialize
    from qsnn.hw.verify import stimulus

    if images is not None and images < 1:
        raise QsnnError(f"--images {images}: must be at least 1")
    if baud <= 0:
        raise QsnnError(f"--baud {baud}: must be positive")
    build_dir = Path(build_dir)
    graph = serialize.load(build_dir)
    x, counts, labels = stimulus(graph, build_dir, images)
    if len(x) == 0:
        raise QsnnError(f"no test images for {build_dir}")
    want = np.argmax(counts, axis=1)  # lowest index on ties, as the readout
    nbytes = input_bytes(graph)
    frames = [encode_image(img, graph.input.encoding) for img in x]
    if len(frames[0]) != nbytes:
        raise QsnnError(f"test images have {len(frames[0])} bytes, the IR's input needs "
                        f"{nbytes}")
    classes = graph.classes
    want_id = design_id(ir_sha256(build_dir))
    hw_dir = Path(hw_dir) if hw_dir is not None else Path("hw/build") / build_dir.name
    wait = timeout_s + BITS_PER_BYTE * (nbytes + 1) / baud
    ser = _open(port, baud, wait)
    preds = np.empty(len(frames), dtype=np.int64)
    weights_sent = 0
    try:
        ser.reset_input_buffer()
        board_id, loaded = parse_info(_transact(ser, port, info_request(), INFO_BYTES,
                                                timeout_s, "the info request"))
        if board_id != want_id:
            raise QsnnError(f"the board at {port} runs design {board_id:08x}, the IR in "
                            f"{build_dir} is {want_id:08x}: program the board with this "
                            "IR's bitstream (qsnn hw, qsnn bitstream, qsnn program)")
        if load_weights or not loaded:
            blob = _weights_blob(hw_dir, want_id)
            ack = _transact(ser, port, weights_request(blob), 1,
                            timeout_s + BITS_PER_BYTE * (len(blob) + 1) / baud,
                            f"the weights ({len(blob)} bytes)")
            if ack[0] != CMD_WEIGHTS:
                raise QsnnError(f"{port} answered 0x{ack[0]:02x} to the weights, want "
                                f"0x{CMD_WEIGHTS:02x}")
            weights_sent = len(blob)
        t0 = time.perf_counter()
        for i, frame in enumerate(frames):
            preds[i] = _classify(ser, port, frame, wait, classes, i)
        seconds = time.perf_counter() - t0
    finally:
        ser.close()
    n = len(frames)
    mismatches = np.nonzero(preds != want)[0]
    report: dict[str, Any] = {
        "images": n,
        "accuracy": float((preds == labels[:n]).mean()),
        "agreement": float(1 - len(mismatches) / n),
        "images_per_second": n / seconds if seconds > 0 else float("inf"),
        "port": port,
        "baud": baud,
        "golden_accuracy": float((want == labels[:n]).mean()),
        "mismatches": [int(i) for i in mismatches],
        "seconds": seconds,
        "uart_limit_images_per_second": baud / (BITS_PER_BYTE * (nbytes + 2)),
        "weights_bytes_sent": weights_sent,
    }
    print(f"{port} @ {baud} baud: {n} images, accuracy {100 * report['accuracy']:.2f}% "
          f"(golden model {100 * report['golden_accuracy']:.2f}%), agreement with the golden "
          f"model {100 * report['agreement']:.2f}% ({len(mismatches)} differ"
          + (f", first: image {mismatches[0]}" if len(mismatches) else "") + ")")
    print(f"throughput {report['images_per_second']:.1f} images/s including UART "
          f"({nbytes} bytes per image; UART limit "
          f"{report['uart_limit_images_per_second']:.1f} images/s)")
    return report


def _weights_blob(hw_dir: Path, want_id: int) -> bytes:
    """``weights.bin`` of the generated design in ``hw_dir`` (checked against the IR)."""
    if not (hw_dir / "params.json").is_file():
        raise QsnnError(f"the board needs its run-time weights but {hw_dir} holds no "
                        "generated design: pass --hw (the qsnn hw output folder)")
    design = Design.load(hw_dir)
    if design.id != want_id:
        raise QsnnError(f"{hw_dir} was generated from another IR: regenerate it with qsnn hw")
    blob_file = hw_dir / WEIGHTS_FILE
    if not blob_file.is_file():
        raise QsnnError(f"the board reports its weights not loaded, but {hw_dir} has no "
                        "weights.bin (design generated without --runtime-weights?)")
    blob = blob_file.read_bytes()
    if len(blob) != design.weight_bytes:
        raise QsnnError(f"{blob_file} has {len(blob)} bytes, params.json says "
                        f"{design.weight_bytes}: regenerate it with qsnn hw")
    return blob


def _transact(ser, port: str, request: bytes, reply_len: int, wait: float,
              what: str) -> bytes:
    """Send ``request``, read exactly ``reply_len`` bytes within ``wait`` seconds."""
    import serial

    ser.timeout = wait
    ser.write_timeout = wait
    try:
        ser.write(request)
        got = ser.read(reply_len)
    except serial.SerialTimeoutException:
        raise QsnnError(f"writing {what} to {port} timed out after {_secs(wait)} s: is the "
                        "board connected?") from None
    except (serial.SerialException, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise QsnnError(f"serial port {port} failed during {what}: {reason}") from None
    if len(got) != reply_len:
        raise QsnnError(f"no answer from {port} to {what} after {_secs(wait)} s: is the board "
                        f"programmed? (check the baud rate, {ser.baudrate})")
    return got


def _secs(s: float) -> str:
    return f"{s:.1f}" if s >= 1 else f"{s:.2g}"


def _classify(ser, port: str, frame: bytes, wait: float, classes: int, index: int) -> int:
    """Send one image, return the board's prediction byte."""
    pred = _transact(ser, port, image_request(frame), 1, wait, f"image {index}")[0]
    if pred >= classes:
        raise QsnnError(f"{port} answered {pred} (0x{pred:02x}) for image {index}: outside the "
                        f"class range 0..{classes - 1} (wrong design or baud rate?)")
    return pred
