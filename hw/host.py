"""Host runtime for a board running ``qsnn_uart_top`` (``docs/hardware.md``, UART wrapper).

Protocol (8N1; the board's ``CLKS_PER_BIT`` = clock / baud): the host sends one image,
``params.json`` ``input_bytes`` bytes (:func:`encode_image`), and reads one byte, the
prediction; the next image only after the prediction (the board buffers one byte).
There is no framing or resynchronisation: after an aborted transfer (a partial image
left in the board) reset the board before the next run.

:func:`run_on_port` streams test images of the IR's dataset (the golden vectors in
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

ENCODINGS = ("direct", "rate", "events")
DEFAULT_TIMEOUT_S = 5.0
BITS_PER_BYTE = 10  # 8N1: start, 8 data, stop


def encode_image(x: Any, encoding: str) -> bytes:
    """The exact bytes the host sends for one input.

    ``direct``/``rate``: the image's pixels (0..255) in row-major (C, H, W) order;
    ``events``: T frames of 0/1 bytes, frame 0 first, each row-major. ``x`` is an array
    (numpy, torch or nested lists) of integer values.
    """
    if encoding not in ENCODINGS:
        raise QsnnError(f"unknown input encoding {encoding!r}; choose one of: "
                        f"{', '.join(ENCODINGS)}")
    a = np.asarray(x)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.size == 0:
        raise QsnnError("encode_image: empty input")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)) \
                or not np.all(a == np.floor(a)):
            raise QsnnError(f"encode_image: input values must be integers (got {a.dtype})")
    top = 1 if encoding == "events" else 255
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > top:
        what = "event frames must hold 0/1" if encoding == "events" else "pixels must be 0..255"
        raise QsnnError(f"encode_image: values {lo:g}..{hi:g} out of range ({what})")
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes(order="C")


def input_bytes(graph) -> int:
    """Bytes per image the board expects (``params.json`` ``input_bytes``)."""
    n = int(np.prod(graph.input.shape))
    return n * (graph.time_steps if graph.input.encoding == "events" else 1)


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
                baud: int = 115200, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Classify ``images`` test images (None: the dataset's whole test split) on the board
    at ``port`` and compare with the golden model of the IR in ``build_dir``.

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
    wait = timeout_s + BITS_PER_BYTE * nbytes / baud
    ser = _open(port, baud, wait)
    preds = np.empty(len(frames), dtype=np.int64)
    try:
        ser.reset_input_buffer()
        t0 = time.perf_counter()
        for i, frame in enumerate(frames):
            preds[i] = _classify(ser, port, frame, wait, classes, i)
        seconds = time.perf_counter() - t0
    finally:
        ser.close()
    n = len(frames)
    mismatches = np.nonzero(preds != want)[0]
    report = {
        "images": n,
        "accuracy": float((preds == labels[:n]).mean()),
        "agreement": float(1 - len(mismatches) / n),
        "images_per_second": n / seconds if seconds > 0 else float("inf"),
        "port": port,
        "baud": baud,
        "golden_accuracy": float((want == labels[:n]).mean()),
        "mismatches": [int(i) for i in mismatches],
        "seconds": seconds,
        "uart_limit_images_per_second": baud / (BITS_PER_BYTE * (nbytes + 1)),
    }
    print(f"{port} @ {baud} baud: {n} images, accuracy {100 * report['accuracy']:.2f}% "
          f"(golden model {100 * report['golden_accuracy']:.2f}%), agreement with the golden "
          f"model {100 * report['agreement']:.2f}% ({len(mismatches)} differ"
          + (f", first: image {mismatches[0]}" if len(mismatches) else "") + ")")
    print(f"throughput {report['images_per_second']:.1f} images/s including UART "
          f"({nbytes} bytes per image; UART limit "
          f"{report['uart_limit_images_per_second']:.1f} images/s)")
    return report


def _secs(s: float) -> str:
    return f"{s:.1f}" if s >= 1 else f"{s:.2g}"


def _classify(ser, port: str, frame: bytes, wait: float, classes: int, index: int) -> int:
    """Send one image, return the board's prediction byte."""
    import serial

    try:
        ser.write(frame)
        got = ser.read(1)
    except serial.SerialTimeoutException:
        raise QsnnError(f"writing to {port} timed out after {_secs(wait)} s (image {index}): is "
                        "the board connected?") from None
    except (serial.SerialException, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise QsnnError(f"serial port {port} failed during image {index}: {reason}") from None
    if not got:
        raise QsnnError(f"no answer from {port} after {_secs(wait)} s: is the board programmed? "
                        f"(image {index}; check the baud rate, {ser.baudrate})")
    pred = got[0]
    if pred >= classes:
        raise QsnnError(f"{port} answered {pred} (0x{pred:02x}) for image {index}: outside the "
                        f"class range 0..{classes - 1} (wrong design or baud rate?)")
    return pred
