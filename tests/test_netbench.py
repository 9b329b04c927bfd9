"""qsnn.hw.netbench without a simulator: the stimulus file and the parsing of the bench's
results (x/z bits, ERROR lines, missing results are failures naming the image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsnn.hw import netbench
from qsnn.hw.netbench import BenchDesign, BenchError

DESIGN = BenchDesign(Path("/nowhere/hw"), (), input_bytes=3, classes=3, count_bits=16,
                     weights=b"")


def lines(*rows: str, done: int | None = None) -> str:
    return "\n".join(["SEED 7", *rows, *([f"DONE {done}"] if done is not None else [])]) + "\n"


def test_stimulus_is_weights_then_images() -> None:
    images = np.array([[1, 2, 255], [16, 0, 7]], np.uint8)
    assert netbench.stimulus_text(b"\x0a\xff", images).split() == [
        "0a", "ff", "01", "02", "ff", "10", "00", "07"]


def test_results_unpack_counts_class_zero_lowest() -> None:
    got = netbench.parse_results(lines("R 0 02 0000010d 000300040005 00000003",
                                       "R 1 00 00000114 000000000009 00000000", done=2),
                                 DESIGN, 10, 2)
    assert [(r.image, r.counts, r.prediction, r.cycles, r.gaps) for r in got] == [
        (10, [5, 4, 3], 2, 0x10D, 3), (11, [9, 0, 0], 0, 0x114, 0)]


@pytest.mark.parametrize("row,field", [("R 0 0x 0000010d 000300040005 0", "m_pred"),
                                       ("R 0 02 0000010d 0003000z0005 0", "m_counts"),
                                       ("R 0 02 X000010d 000300040005 0", "m_cycles"),
                                       ("R 0 02 0000010d 000300040005 x", "gaps")])
def test_x_or_z_on_any_output_fails(row, field) -> None:
    with pytest.raises(BenchError, match=f"x/z bits on {field} for image 4"):
        netbench.parse_results(lines(row, done=1), DESIGN, 4, 1)


def test_error_line_fails_with_the_global_image_number() -> None:
    text = lines("R 0 02 0000010d 000300040005 00000003",
                 "ERROR timeout: no m_valid (image 1, 40001 cycles)")
    with pytest.raises(BenchError, match=r"timeout: no m_valid \(image 101, 40001 cycles\)"):
        netbench.parse_results(text, DESIGN, 100, 2)


@pytest.mark.parametrize("text", ["", lines("R 0 02 0000010d 000300040005 00000003"),
                                  lines("R 0 02 0000010d 000300040005 00000003", done=2)])
def test_missing_results_fail(text) -> None:
    with pytest.raises(BenchError, match="of 2 results"):
        netbench.parse_results(text, DESIGN, 0, 2)


def test_batches_fill_the_stimulus_memory() -> None:
    fm = BenchDesign(Path("x"), (), 784, 10, 16, b"\0" * 50176)
    assert netbench.batch_images(fm) == (netbench.STIM_BYTES - 50176) // 784 >= 10_000
    assert netbench.batch_images(BenchDesign(Path("x"), (), netbench.STIM_BYTES * 2, 2, 16,
                                             b"")) == 1


def test_unknown_simulator_and_wrong_image_size() -> None:
    with pytest.raises(netbench.QsnnError, match="unknown simulator 'modelsim'"):
        netbench.run(DESIGN, np.zeros((1, 3), np.uint8), 100, simulator="modelsim")
    with pytest.raises(netbench.QsnnError, match="images of 4 bytes, the design takes 3"):
        netbench.run(DESIGN, np.zeros((1, 4), np.uint8), 100)


def test_incomplete_design_is_one_line(tmp_path) -> None:
    from qsnn.hw.generate import generate
    from qsnn.testing import save_ir, small_mlp

    save_ir(small_mlp(), tmp_path / "build")
    generate(tmp_path / "build", tmp_path / "hw", lanes=4)
    (tmp_path / "hw" / "qsnn_top.v").unlink()
    with pytest.raises(netbench.QsnnError, match=r"incomplete \(qsnn_top.v missing\)"):
        netbench.bench_design(tmp_path / "hw")
