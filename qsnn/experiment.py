"""``qsnn experiment schedules``: the LR-schedule ablation of Eshraghian et al. (2022).

Trains every (precision, schedule, seed) combination of one base config, each as an
ordinary ``qsnn train`` run folder, then writes the summary. Layout of the experiment
folder (default ``runs/experiments/<name>/``)::

    experiment.json              format, version, name, config hash and base config
    runs/<precision>-<schedule>-s<seed>/   one training run each (+ golden.json for integer
                                           hardware-aware precisions)
    results.json, results.md     per-run figures and mean ± std per cell
    plots/<precision>.png        loss and accuracy per schedule with the LR overlaid
    plots/accuracy.png           validation accuracy of every cell

Resuming is running the same command again: finished runs (``result.json`` present)
are skipped, a run killed mid-way continues from its ``last.pt`` (bit-identical to an
uninterrupted run, see ``qsnn.train.runner``). A folder made from a different base
config is refused (its hash is stored in ``experiment.json``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qsnn import atomic, config, fingerprint
from qsnn.config import RunConfig
from qsnn.errors import QsnnError

FORMAT = "qsnn-experiment"
VERSION = 1
STATE_FILE = "experiment.json"
GOLDEN_FILE = "golden.json"
# The keys an experiment varies: not part of its fingerprint.
GRID_KEYS = (("model", "precision"), ("train", "schedule"), ("train", "seed"))

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    precision: str
    schedule: str
    seed: int

    @property
    def key(self) -> str:
        """Run folder name: ``<precision>-<schedule>-s<seed>``."""
        return f"{self.precision}-{self.schedule}-s{self.seed}"


@dataclass(frozen=True)
class Grid:
    """Precisions × schedules × seeds, in the order given (duplicates removed)."""

    precisions: tuple[str, ...]
    schedules: tuple[str, ...]
    seeds: tuple[int, ...]

    def cells(self) -> list[Cell]:
        """Every combination, precision-major, seed-minor."""
        return [Cell(p, s, seed) for p in self.precisions for s in self.schedules
                for seed in self.seeds]

    def to_dict(self) -> dict[str, list]:
        """JSON form."""
        return {"precisions": list(self.precisions), "schedules": list(self.schedules),
                "seeds": list(self.seeds)}


def _names(kind: str, values: Sequence[str], valid: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(values))
    if not out:
        raise QsnnError(f"no {kind}s given")
    for v in out:
        if v not in valid:
            raise QsnnError(f"unknown {kind} '{v}' (valid: {', '.join(valid)})")
    return out


def make_grid(precisions: Sequence[str], schedules: Sequence[str],
              seeds: Sequence[int | str]) -> Grid:
    """Validated grid; unknown names or bad seeds are a one-line :class:`QsnnError`."""
    seed_list: list[int] = []
    for s in seeds:
        try:
            seed = int(s)
        except (TypeError, ValueError):
            raise QsnnError(f"seed '{s}' is not an integer") from None
        if seed < 0:
            raise QsnnError(f"seed {seed} is negative")
        seed_list.append(seed)
    if not seed_list:
        raise QsnnError("no seeds given")
    return Grid(_names("precision", precisions, config.PRECISIONS),
                _names("schedule", schedules, config.SCHEDULES),
                tuple(dict.fromkeys(seed_list)))


def cell_config(base: RunConfig, cell: Cell, name: str) -> RunConfig:
    """``base`` with the cell's precision, schedule, seed and a run name."""
    return config.apply_overrides(base, [
        f"model.precision={cell.precision}", f"train.schedule={cell.schedule}",
        f"train.seed={cell.seed}", f"name={name}-{cell.key}"])


def open_folder(out: Path, base: RunConfig, name: str) -> str:
    """Create ``out/experiment.json`` or check that the folder holds this experiment.

    Returns the experiment's name: ``name`` for a new folder, the stored one otherwise
    (run names are part of each run's checkpointed config, so they must not change).
    """
    state = {"format": FORMAT, "version": VERSION, "name": name,
             "config_hash": fingerprint.config_hash(base, GRID_KEYS),
             "config": fingerprint.config_dict(base, GRID_KEYS)}
    path = out / STATE_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            ok = saved.get("format") == FORMAT and "config_hash" in saved
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise QsnnError(f"{path} is not a qsnn experiment file")
        if saved["config_hash"] != state["config_hash"]:
            diffs = fingerprint.differences(saved.get("config", {}), state["config"])
            raise QsnnError(
                f"experiment folder {out} was made from a different configuration "
                f"({', '.join(diffs[:5]) or 'config'} differ; hash {saved['config_hash']} "
                f"!= {state['config_hash']}); use another --out")
        return str(saved.get("name", name))
    if out.exists() and any(out.iterdir()):
        raise QsnnError(f"{out} exists and is not an experiment folder (no {STATE_FILE})")
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, state)
    return name


def read_json_object(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON object in ``path`` if it has ``keys``; None if absent or not such a file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and all(k in data for k in keys) else None


def run_cell(cfg: RunConfig, run_dir: Path) -> tuple[dict[str, Any], str]:
    """Train (or resume, or skip) one run; returns its ``result.json`` and what was done."""
    from qsnn.train.runner import train

    done = read_json_object(run_dir / "result.json", ("test_accuracy", "epochs"))
    if done is not None:
        return done, "done"
    # no result.json, or a hand-edited one (they are written atomically): train or finish
    resume = (run_dir / "last.pt").is_file()
    return train(cfg, run_dir, resume=resume, force=not resume), (
        "resumed" if resume else "trained")


def golden_check(cfg: RunConfig, run_dir: Path) -> dict[str, Any] | None:
    """Integer golden-model vs torch on the test split (the ``qsnn export`` path).

    Lowers the best checkpoint to the IR (every pass checked by exact equality), assigns
    minimal membrane widths, runs the golden model on every test image. Cached in
    ``<run>/golden.json``. None for float (non hardware-aware) runs.
    """
    if not cfg.hardware_aware:
        return None
    path = run_dir / GOLDEN_FILE
    cached = read_json_object(path, ("golden_accuracy", "agreement"))
    if cached is not None:
        return cached
    from qsnn.export import golden
    from qsnn.export.runner import CHECK_IMAGES, assign_widths, load_run, lower_and_fold
    from qsnn.train.loop import spike_counts

    run_cfg, model, data = load_run(run_dir)
    test = data.test
    want = spike_counts(model, test, run_cfg.train.eval_batch_size, torch.device("cpu"))
    n = min(CHECK_IMAGES, len(test.y))
    enc, nodes, _ = lower_and_fold(model, run_cfg, data, test.x[:n])
    meta = {"dataset": run_cfg.data.dataset, "precision": run_cfg.model.precision,
            "classes": data.num_classes}
    graph = assign_widths(enc, nodes, run_cfg.name, run_cfg.data.time_steps, None, meta)
    res = golden.run_batched(graph, test.x)
    result = {
        "golden_accuracy": float((res.predictions == test.y).float().mean()),
        "torch_accuracy": float((torch.argmax(want, 1) == test.y).float().mean()),
        "agreement": float((res.counts == want).all(1).float().mean()),
        "test_images": int(len(test.y)),
    }
    atomic.write_json(path, result)
    return result


def run_schedules(base: RunConfig, grid: Grid, out: str | Path, *, name: str | None = None,
                  log: Log = _stderr) -> dict[str, Any]:
    """Train the whole grid into ``out`` and write the summary; returns ``results.json``."""
    from qsnn import experiment_plots, experiment_report

    out = Path(out)
    name = open_folder(out, base, name or base.name)
    t0 = time.perf_counter()
    cells = grid.cells()
    records = []
    for i, cell in enumerate(cells):
        cfg = cell_config(base, cell, name)
        run_dir = out / "runs" / cell.key
        log(f"qsnn experiment: [{i + 1}/{len(cells)}] {cell.key}")
        result, action = run_cell(cfg, run_dir)
        if action == "done":
            log(f"qsnn experiment: {cell.key} already finished, skipped")
        gold = golden_check(cfg, run_dir)
        records.append(experiment_report.record(cell, run_dir, out, result, gold))
    summary = experiment_report.summarize(name, base, grid, records)
    experiment_report.write(out, summary)
    experiment_plots.write(out, base, grid, records)
    log(f"qsnn experiment: {len(cells)} runs in {time.perf_counter() - t0:.1f}s -> "
        f"{out / 'results.md'}")
    return summary
