"""Fault injection: SIGKILL ``qsnn train``, ``export`` and ``hw`` at random instants while
they replace an existing output, 20 times each (``bitstream``: sim/test_faults_bitstream.py).

Each kill hits a real command in a real process: the commands run in processes forked
from a ``forkserver`` that has imported qsnn once (a kill costs a fork, not a Python
start). The instant is drawn (seeded) from the named points of :mod:`qsnn.outdir`: every
atomic file write, the lock, the staging folder, the marker, both renames of the swap
and every file deleted from the old output; so a draw falls in each phase, not mostly in
the compute before them. After every kill the output must be the old one or the new one
(byte for byte; a run: whole and loadable), as a reader finds it; at the end one more,
uninterrupted, command must leave no staging, old or lock entry behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from qsnn_testutil import ROOT, TINY

from qsnn import outdir

KILLS = 20
PRELOAD = ["qsnn.cli", "qsnn.train.runner", "qsnn.export.runner", "qsnn.hw.generate",
           "qsnn.hw.design", "qsnn.train.plots", "qsnn.export.nir_export", "sklearn.datasets"]
# a run small enough that a trial costs well under a second
MICRO = TINY + ["data.max_train=96", "data.max_test=24", "data.time_steps=2",
                "train.epochs=1", "model.layers=[fc8, lif, fc10, lif]"]


def _child(argv: list[str], env: dict[str, str]) -> None:
    os.environ.update(env)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    from qsnn.cli import main

    os._exit(main(argv))


@pytest.fixture(scope="module")
def qsnn_proc():
    """``run(argv, env) -> exit code`` in a process forked from a preloaded server."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)

    def run(argv: list[str], env: dict[str, str] | None = None) -> int:
        p = ctx.Process(target=_child, args=(argv, env or {}))
        p.start()
        p.join(120)
        if p.exitcode is None:
            p.kill()
            p.join()
            raise AssertionError(f"qsnn {argv[0]} hung")
        return p.exitcode

    return run


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()
                  if ".qsnn-stage." in p.name or ".qsnn-old." in p.name
                  or p.name.endswith(".qsnn-lock"))


def kill_trials(run, argv: list[str], tmp: Path, restore: Callable[[], None],
                check: Callable[[], str], seed: int) -> dict[str, int]:
    """Kill ``argv`` 20 times at seeded random points; ``check()`` names what it found."""
    count = tmp / "points"
    restore()
    assert run(argv, {outdir.KILL_COUNT_ENV: str(count)}) == 0
    names = count.read_text().split()
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(names, 1):
        by_name.setdefault(n, []).append(i)
    rng = random.Random(seed)
    found: dict[str, int] = {}
    for _ in range(KILLS):
        restore()
        name = rng.choice(sorted(by_name))          # a phase, then an instant in it
        at = rng.choice(by_name[name])
        assert run(argv, {outdir.KILL_ENV: str(at)}) == -9, f"not killed at {name}"
        what = check()
        found[what] = found.get(what, 0) + 1
    assert set(by_name) >= {"locked", "write", "marked", "aside", "swapped", "delete"}
    return found


def test_killed_hw_leaves_the_old_or_the_new_design(qsnn_proc, tmp_path) -> None:
    build = _make_ir(tmp_path)
    out = tmp_path / "hw"
    assert qsnn_proc(["hw", str(build), "--out", str(out), "--lanes", "4"]) == 0
    new = tree(out)
    assert qsnn_proc(["hw", str(build), "--out", str(out), "--lanes", "2"]) == 0
    sim = out / "sim_build"                  # a large old output: 240 files to delete
    for i in range(240):
        (sim / f"d{i % 8}").mkdir(parents=True, exist_ok=True)
        (sim / f"d{i % 8}" / f"f{i}.o").write_bytes(os.urandom(64))
    restore = restorer(out, tmp_path / "pristine")
    old = tree(out)

    def check() -> str:
        from qsnn.hw.design import Design

        Design.load(out)                     # a reader: finishes an interrupted swap
        got = tree(out)
        assert got in (old, new), "half-written design"
        return "old" if got == old else "new"

    argv = ["hw", str(build), "--out", str(out), "--lanes", "4"]
    found = kill_trials(qsnn_proc, argv, tmp_path, restore, check, seed=15)
    assert set(found) == {"old", "new"}, found
    assert qsnn_proc(argv) == 0 and tree(out) == new
    assert leftovers(tmp_path) == []


def _make_ir(tmp_path: Path) -> Path:
    from qsnn.testing import small_ir

    return small_ir(tmp_path / "build")


def restorer(folder: Path, pristine: Path) -> Callable[[], None]:
    """Copy ``folder`` to ``pristine`` now; the returned function puts that copy back."""
    shutil.copytree(folder, pristine)

    def restore() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(pristine, folder)
    return restore


def _train_argv(out: Path, seed: int, *extra: str) -> list[str]:
    sets = [a for t in MICRO + [f"train.seed={seed}"] for a in ("--set", t)]
    return ["train", "--config", str(ROOT / "configs/digits.yaml"), "--out", str(out),
            *sets, *extra]


def test_killed_export_leaves_the_old_or_the_new_export(qsnn_proc, tmp_path) -> None:
    run, out = tmp_path / "runs/x", tmp_path / "build/x"
    assert qsnn_proc(_train_argv(run, 0)) == 0
    argv = ["export", str(run), "--out", str(out), "--vectors", "8", "--no-qonnx"]
    assert qsnn_proc(argv) == 0
    new = tree(out)
    old_tree = {"model.json": b"{}", "weights.npz": b"old", "export_report.json": b"{}"}
    old_tree |= {f"golden/v{i}.npz": os.urandom(256) for i in range(120)}

    def restore() -> None:
        shutil.rmtree(out, ignore_errors=True)
        for name, data in old_tree.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)

    def check() -> str:
        outdir.recover(out)
        got = tree(out)
        assert got in (old_tree, new), "half-written export"
        return "old" if got == old_tree else "new"

    found = kill_trials(qsnn_proc, argv, tmp_path / "build", restore, check, seed=16)
    assert set(found) == {"old", "new"}, found
    assert qsnn_proc(argv) == 0 and tree(out) == new
    assert leftovers(tmp_path / "build") == []


def test_killed_train_force_leaves_the_old_or_the_new_run(qsnn_proc, tmp_path) -> None:
    from qsnn import config
    from qsnn.train import checkpoint

    run = tmp_path / "runs/x"
    assert qsnn_proc(_train_argv(run, 1)) == 0
    restore = restorer(run, tmp_path / "pristine")
    old = tree(run)

    def check() -> str:
        outdir.recover(run)
        got = tree(run)
        if got == old:
            return "old"
        assert config.load(run / "config.yaml").train.seed == 2, "half-replaced run"
        assert checkpoint.load(run / "last.pt")["epoch"] == 1
        checkpoint.load(run / "best.pt")
        assert (run / "result.json").is_file() and (run / "metrics.jsonl").is_file()
        return "new"

    argv = _train_argv(run, 2, "--force")
    found = kill_trials(qsnn_proc, argv, tmp_path / "runs", restore, check, seed=17)
    assert set(found) == {"old", "new"}, found
    assert qsnn_proc(argv) == 0 and check() == "new"
    assert leftovers(tmp_path / "runs") == []
