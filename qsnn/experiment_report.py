"""Experiment summary: per-run records, mean ± std per cell, ``results.json`` / ``results.md``.

The column definitions are :data:`DEFINITIONS` (printed under the table).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qsnn import atomic, fingerprint
from qsnn.config import RunConfig
from qsnn.experiment import GRID_KEYS, Cell, Grid

RESULTS_FORMAT = "qsnn-experiment-results"
DEFINITIONS = """\
- *best val*: the highest validation accuracy over the epochs (model selection);
- *test @ best val*: test accuracy of the model saved at that epoch (`best.pt`);
- *epochs to 95 %*: the first epoch whose validation accuracy is at least 95 % of the
  last epoch's (train accuracy when there is no validation split);
- *golden*: accuracy of the integer golden model run from the exported IR (integer,
  hardware-aware precisions only); *golden = torch*: the fraction of test images whose
  output spike counts are identical (lowest over seeds);
- mean ± std over seeds, std the sample standard deviation (n − 1); "—" where undefined.
"""
STAT_KEYS = ("best_val_accuracy", "test_accuracy", "epochs_to_95", "golden_accuracy",
             "agreement", "seconds")


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl`` lines."""
    text = (run_dir / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def epochs_to_fraction(history: Sequence[dict[str, Any]], fraction: float = 0.95) -> int | None:
    """First epoch whose validation (else train) accuracy is ≥ ``fraction`` × the last one."""
    key = "val_accuracy" if history and history[-1].get("val_accuracy") is not None \
        else "train_accuracy"
    if not history:
        return None
    target = fraction * history[-1][key]
    return next(h["epoch"] for h in history if h[key] is not None and h[key] >= target)


def record(cell: Cell, run_dir: Path, exp_dir: Path, result: dict[str, Any],
           golden: dict[str, Any] | None) -> dict[str, Any]:
    """One run's figures (accuracies as fractions)."""
    history = read_history(run_dir)
    gold = golden or {}
    return {
        "precision": cell.precision, "schedule": cell.schedule, "seed": cell.seed,
        "run": str(run_dir.relative_to(exp_dir)), "epochs": len(history),
        "best_epoch": result["best_epoch"], "best_val_accuracy": result["best_val_accuracy"],
        "test_accuracy": result["test_accuracy"],
        "final_val_accuracy": history[-1]["val_accuracy"] if history else None,
        "epochs_to_95": epochs_to_fraction(history),
        "golden_accuracy": gold.get("golden_accuracy"), "agreement": gold.get("agreement"),
        "seconds": result["seconds"],
        "history": history,
    }


def stats(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample std (None for n < 2), n and the values; Nones are left out."""
    vals = [float(v) for v in values if v is not None]
    mean = statistics.fmean(vals) if vals else None
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return {"mean": mean, "std": std, "n": len(vals), "values": vals}


def summarize(name: str, base: RunConfig, grid: Grid,
              records: list[dict[str, Any]]) -> dict[str, Any]:
    """The contents of ``results.json``."""
    cells = []
    for p in grid.precisions:
        for s in grid.schedules:
            runs = [r for r in records if r["precision"] == p and r["schedule"] == s]
            cells.append({"precision": p, "schedule": s,
                          **{k: stats([r[k] for r in runs]) for k in STAT_KEYS}})
    return {
        "format": RESULTS_FORMAT, "version": 1, "experiment": name,
        "config_name": base.name, "config_hash": fingerprint.config_hash(base, GRID_KEYS),
        "dataset": base.data.dataset, "time_steps": base.data.time_steps,
        "epochs": base.train.epochs, "grid": grid.to_dict(), "cells": cells,
        "runs": [{k: v for k, v in r.items() if k != "history"} for r in records],
        "train_seconds": round(sum(r["seconds"] for r in records), 3),
    }


def _pct(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "—"
    if stat["std"] is None:
        return f"{100 * stat['mean']:.2f}"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def _num(stat: dict[str, Any], digits: int = 1) -> str:
    if stat["mean"] is None:
        return "—"
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _agreement(stat: dict[str, Any]) -> str:
    return "—" if not stat["values"] else f"{min(stat['values']):.4f}"


def _opt_pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def markdown(summary: dict[str, Any]) -> str:
    """The contents of ``results.md``."""
    g = summary["grid"]
    lines = [
        f"# Experiment `{summary['experiment']}`: LR schedules × precisions", "",
        f"Config `{summary['config_name']}` (hash `{summary['config_hash']}`), dataset "
        f"{summary['dataset']}, T={summary['time_steps']}, {summary['epochs']} epochs; "
        f"precisions {', '.join(g['precisions'])}; schedules {', '.join(g['schedules'])}; "
        f"seeds {', '.join(map(str, g['seeds']))}. Accuracies in %, mean ± std over seeds.",
        "",
        "| precision | schedule | best val | test @ best val | epochs to 95 % | golden "
        "(integer IR) | golden = torch (min) | train s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in summary["cells"]:
        lines.append(
            f"| {c['precision']} | {c['schedule']} | {_pct(c['best_val_accuracy'])} | "
            f"{_pct(c['test_accuracy'])} | {_num(c['epochs_to_95'])} | "
            f"{_pct(c['golden_accuracy'])} | {_agreement(c['agreement'])} | "
            f"{_num(c['seconds'])} |")
    lines += ["", "Per run:", "",
              "| run | best epoch | best val | test | final val | epochs to 95 % | golden | "
              "agreement | s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        agree = "—" if r["agreement"] is None else f"{r['agreement']:.4f}"
        lines.append(
            f"| {r['run']} | {r['best_epoch']} | {_opt_pct(r['best_val_accuracy'])} | "
            f"{_opt_pct(r['test_accuracy'])} | {_opt_pct(r['final_val_accuracy'])} | "
            f"{r['epochs_to_95']} | {_opt_pct(r['golden_accuracy'])} | {agree} | "
            f"{r['seconds']:.1f} |")
    lines += ["", "Definitions:", "", DEFINITIONS]
    return "\n".join(lines)


def write(out: Path, summary: dict[str, Any]) -> None:
    """Atomically write ``results.json`` and ``results.md``."""
    atomic.write_json(out / "results.json", summary)
    atomic.write_text(out / "results.md", markdown(summary))
