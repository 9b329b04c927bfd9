"""Fault injection for ``qsnn bitstream`` (the other commands: tests/test_faults.py).

SIGKILL a real ``qsnn bitstream`` 20 times at seeded random instants: at the lock, at the
staging folder, or at a random time (0-4 s) after the staging folder appeared, i.e. while
the YoWASP tools run in it. After each kill the old board folder must be untouched and no
tool process may survive (they die with qsnn: PR_SET_PDEATHSIG), else it would go on
writing into a staging folder. Then one uninterrupted run (the only full flow here: the
swap that follows the tools is the code that tests/test_faults.py kills 20 times per
command) must produce the new bitstream and sweep every staging folder the kills left.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

import pytest

from qsnn import outdir
from qsnn.errors import QsnnError
from qsnn.hw import fpga

KILLS = 20


def _have_ice40() -> bool:
    try:
        fpga.toolchain(fpga.BOARDS["icebreaker"], pll=False)
    except QsnnError:
        return False
    return True


def _child(argv: list[str], env: dict[str, str]) -> None:
    os.environ.update(env)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    from qsnn.cli import main

    os._exit(main(argv))


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def processes_in(folder: Path) -> list[int]:
    """Pids of processes whose working folder lies in ``folder``."""
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and Path(os.readlink(p / "cwd")).is_relative_to(folder):
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def wait_for(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.mark.skipif(not _have_ice40(), reason="iCE40 toolchain (yowasp) not installed")
def test_killed_bitstream_keeps_the_old_one(tmp_path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_faults import _make_ir

    from qsnn.hw.generate import generate

    build = _make_ir(tmp_path)
    hw = tmp_path / "hw"
    generate(build, hw, lanes=4)
    board = hw / "icebreaker"                # an earlier bitstream of this design
    board.mkdir()
    for name in ("board_top.v", "qsnn_t.bin", "report.json", "nextpnr.log"):
        (board / name).write_bytes(os.urandom(128))
    old = tree(board)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["qsnn.cli", "qsnn.hw.fpga", "qsnn.hw.design"])
    argv = ["bitstream", str(hw), "--board", "icebreaker"]
    rng = random.Random(15)
    where = {"point": 0, "tools": 0}
    for _ in range(KILLS):
        if rng.random() < 0.25:              # at the lock or at the new staging folder
            p = ctx.Process(target=_child, args=(argv, {outdir.KILL_ENV: str(
                rng.choice([1, 2]))}))
            p.start()
            where["point"] += 1
        else:                                # while the tools run in the staging folder
            seen = set(hw.glob(".icebreaker.qsnn-stage.*"))
            p = ctx.Process(target=_child, args=(argv, {}))
            p.start()
            assert wait_for(lambda s=seen: set(hw.glob(".icebreaker.qsnn-stage.*")) - s, 60)
            time.sleep(rng.uniform(0.0, 4.0))
            p.kill()
            where["tools"] += 1
        p.join(60)
        assert p.exitcode == -9
        assert tree(board) == old, "the old bitstream was touched"
        assert wait_for(lambda: not processes_in(tmp_path), 5), "a tool outlived qsnn"
    assert where["point"] and where["tools"] >= KILLS // 2, where
    assert list(hw.glob(".icebreaker.qsnn-stage.*"))         # what the kills left ...
    rep = fpga.bitstream(hw, "icebreaker")
    assert rep["status"] == "ok" and Path(rep["bitstream"]).is_file()
    assert Path(rep["bitstream"]).parent == board and tree(board) != old
    assert [p.name for p in hw.iterdir()
            if any(t in p.name for t in (".qsnn-stage.", ".qsnn-old.", ".qsnn-lock"))] == []
