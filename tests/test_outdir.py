"""Output folders (qsnn.outdir): no command loses or half-writes a user's files.

One test per data-loss case of issue 15, each through the CLI, then the module's rules
(recognising, swap and recovery, lock, stale staging) one by one.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from qsnn_testutil import ROOT, TINY

from qsnn import outdir
from qsnn.cli import main
from qsnn.errors import QsnnError
from qsnn.testing import small_ir


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    """The pid of a process that has exited."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def fake_run(folder: Path) -> dict[str, bytes]:
    """A run folder as qsnn train leaves it (the checkpoints need not load)."""
    folder.mkdir(parents=True)
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "result.json"):
        (folder / name).write_bytes(os.urandom(64))
    return tree(folder)


CONFIG = ["--config", str(ROOT / "configs/digits.yaml")]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("qsnn: error: "), err
    return err


@pytest.fixture
def ir(tmp_path) -> Path:
    """A small exported IR (12 -> 10 -> 3) with golden inputs."""
    return small_ir(tmp_path / "build")


# -- the cases of the issue ---------------------------------------------------------------
def test_export_into_its_own_run_folder_is_refused(tmp_path, capsys) -> None:
    run = tmp_path / "runs/x"
    before = fake_run(run)
    assert main(["export", str(run), "--out", str(run)]) == 2
    assert "is the input" in error_line(capsys)
    assert tree(run) == before


def test_export_into_the_folder_of_all_runs_is_refused(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    fake_run(runs / "a")
    before = tree(runs)
    fake_run(runs / "b")
    before = tree(runs)
    assert main(["export", str(runs / "a"), "--out", str(runs)]) == 2
    assert "contains the input" in error_line(capsys)
    assert tree(runs) == before


def test_hw_into_its_own_ir_folder_is_refused(ir, capsys) -> None:
    before = tree(ir)
    assert main(["hw", str(ir), "--out", str(ir)]) == 2
    assert "is the input" in error_line(capsys)
    assert tree(ir) == before


def test_bitstream_bad_clock_keeps_the_old_bitstream(ir, tmp_path, capsys) -> None:
    hw = tmp_path / "hw"
    assert main(["hw", str(ir), "--out", str(hw)]) == 0
    (hw / "icebreaker").mkdir()
    for name in ("board_top.v", "qsnn_t.bin", "report.json"):
        (hw / "icebreaker" / name).write_bytes(os.urandom(32))
    before = tree(hw)
    for clock in ("0", "-5", "nan", "2000"):
        assert main(["bitstream", str(hw), "--board", "icebreaker", "--clock-mhz", clock]) == 2
        assert "--clock-mhz" in error_line(capsys)
    assert tree(hw) == before


def test_replacing_refuses_foreign_files_even_with_force(tmp_path, ir, capsys) -> None:
    run = tmp_path / "runs/x"
    fake_run(run)
    (run / "notes.txt").write_text("mine")
    before = tree(run)
    sets = [a for t in TINY for a in ("--set", t)]
    assert main(["train", *CONFIG, "--out", str(run), "--force", *sets]) == 2
    assert "notes.txt" in error_line(capsys)
    assert tree(run) == before
    out = tmp_path / "hw"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    assert main(["hw", str(ir), "--out", str(out)]) == 2
    assert "refusing to replace" in error_line(capsys)
    assert (out / "thesis.tex").read_text() == "mine"


def test_second_writer_gets_the_holders_pid(tmp_path, ir, capsys) -> None:
    out = tmp_path / "hw"
    lock = outdir.Lock(out)
    lock.acquire()
    try:
        assert main(["hw", str(ir), "--out", str(out)]) == 2
        assert f"pid {os.getpid()}" in error_line(capsys)
        sets = [a for t in TINY for a in ("--set", t)]
        run = tmp_path / "run"
        holder = outdir.Lock(run)
        holder.acquire()
        assert main(["train", *CONFIG, "--out", str(run), *sets]) == 2
        assert f"being written by another qsnn process (pid {os.getpid()})" in error_line(
            capsys)
        holder.release()
    finally:
        lock.release()
    assert not out.exists() and not (tmp_path / ".hw.qsnn-lock").exists()
    assert main(["hw", str(ir), "--out", str(out)]) == 0


def test_stale_staging_is_swept_and_marker_written(tmp_path, ir) -> None:
    pid = dead_pid()
    stale = [tmp_path / f".hw.qsnn-stage.{pid}.00ff", tmp_path / f".other.qsnn-old.{pid}.0a"]
    for s in stale:
        s.mkdir()
        (s / "qsnn_top.v").write_text("half")
    live = tmp_path / f".hw.qsnn-stage.{os.getpid()}.11ff22ee"   # a running writer's: kept
    live.mkdir()
    (live / "qsnn_top.v").write_text("being written")
    assert main(["hw", str(ir), "--out", str(tmp_path / "hw")]) == 0
    assert not any(s.exists() for s in stale) and live.is_dir()
    marker = json.loads((tmp_path / "hw" / outdir.MARKER).read_text())
    assert marker["kind"] == "hw" and "params.json" in marker["files"]


def test_refused_or_early_killed_train_does_not_block_the_next(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    sets = [a for t in TINY + ["train.epochs=1"] for a in ("--set", t)]
    run.mkdir()                            # what a run killed in its first epoch leaves
    (run / "config.yaml").write_text("name: x\n")
    assert main(["train", *CONFIG, "--out", str(run), "--resume", *sets]) == 2
    assert "stopped before its first epoch ended: start it again without --resume" in \
        error_line(capsys)
    assert main(["train", *CONFIG, "--out", str(run), "--set", "model.beta=2", *sets]) == 2
    error_line(capsys)
    assert not (run / "last.pt").exists()
    assert main(["train", *CONFIG, "--out", str(run), *sets]) == 0
    assert (run / "result.json").is_file() and (run / outdir.MARKER).is_file()


def test_train_force_swaps_a_finished_run(tmp_path, tiny_cfg) -> None:
    from qsnn import config
    from qsnn.train.runner import train

    cfg = config.apply_overrides(tiny_cfg, ["train.epochs=1"])
    run = tmp_path / "run"
    train(cfg, run)
    (run / "golden.json").write_text("{}")          # what qsnn experiment adds
    with pytest.raises(QsnnError, match="already holds a run"):
        train(cfg, run)
    train(config.apply_overrides(cfg, ["train.seed=3"]), run, force=True)
    assert config.load(run / "config.yaml").train.seed == 3
    assert not (run / "golden.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


# -- the rules -----------------------------------------------------------------------------
def test_older_outputs_without_marker_are_recognised(tmp_path) -> None:
    run = tmp_path / "run"
    fake_run(run)
    assert outdir.recognise(run, "run") is None
    assert "qsnn export" in outdir.recognise(run, "export")
    exp = tmp_path / "exp"
    (exp / "golden").mkdir(parents=True)
    for name in ("model.json", "weights.npz", "export_report.json", "model.nir"):
        (exp / name).write_text("x")
    assert outdir.recognise(exp, "export") is None
    (exp / "export_report.json").unlink()       # an IR written by hand: not ours
    assert "no .qsnn-output.json" in outdir.recognise(exp, "export")
    hw = tmp_path / "hw"
    for sub in ("sim_build", "sim_run", "icebreaker", "ulx3s"):   # qsnn verify, bitstream
        (hw / sub).mkdir(parents=True)
    for name in ("params.json", "qsnn_top.v", "qsnn_layer.v", "fc0_w.mem", "sim_report.json",
                 ".orangecrab.qsnn-lock"):
        (hw / name).write_text("x")
    assert outdir.recognise(hw, "hw") is None
    (hw / "de10nano").mkdir()                   # not a board of qsnn.hw.fpga.BOARDS
    assert "did not write (de10nano)" in outdir.recognise(hw, "hw")
    (hw / "de10nano").rmdir()
    outdir.write_marker(hw, "hw")
    assert "qsnn hw" in outdir.recognise(hw, "export")


@pytest.mark.parametrize("point", ["aside", "swapped"])
def test_interrupted_swap_is_recovered_by_the_next_reader(tmp_path, point) -> None:
    """Kill a writer (a real child process, SIGKILL) right after renaming the old folder
    aside, or after renaming the new one in: the next reader finds a whole folder."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "params.json").write_text("old")
    (out / "qsnn_top.v").write_text("old")
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
            "from pathlib import Path\nfrom qsnn import outdir\n"
            f"with outdir.Output(Path({str(out)!r}), 'hw') as s:\n"
            "    (s / 'params.json').write_text('new')\n"
            "    (s / 'qsnn_top.v').write_text('new')\n")
    names = []
    env = dict(os.environ, **{outdir.KILL_COUNT_ENV: str(tmp_path / "points")})
    subprocess.run([os.sys.executable, "-c", code], env=env, check=True)
    names = (tmp_path / "points").read_text().split()
    (out / "params.json").write_text("old")
    (out / "qsnn_top.v").write_text("old")
    env = dict(os.environ, **{outdir.KILL_ENV: str(names.index(point) + 1)})
    assert subprocess.run([os.sys.executable, "-c", code], env=env).returncode == -9
    assert out.exists() == (point == "swapped")
    outdir.recover(out)
    assert (out / "params.json").read_text() == "new" == (out / "qsnn_top.v").read_text()
    outdir.sweep(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "points"]


def test_staging_of_older_versions_is_swept(tmp_path, ir) -> None:
    old = tmp_path / ".hw.ab12cd_9"              # tempfile.mkdtemp(".hw.") of qsnn < outdir
    old.mkdir()
    (old / "qsnn_top.v").write_text("half")
    mine = tmp_path / ".notes.abcdefgh"          # same shape, someone else's files: kept
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    assert main(["hw", str(ir), "--out", str(tmp_path / "hw")]) == 0
    assert not old.exists() and (mine / "todo.txt").read_text() == "mine"


def test_full_disk_is_one_line_and_keeps_the_old_output(tmp_path, ir, capsys,
                                                       monkeypatch) -> None:
    out = tmp_path / "hw"
    assert main(["hw", str(ir), "--out", str(out)]) == 0
    before = tree(out)
    import errno

    import qsnn.hw.generate as gen

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out) + "/x.mem")

    monkeypatch.setattr(gen, "core_file", full)
    capsys.readouterr()
    assert main(["hw", str(ir), "--out", str(out), "--lanes", "2"]) == 2
    assert "No space left on device" in error_line(capsys)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "hw"]
