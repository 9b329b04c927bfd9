"""``qsnn sweep``: Optuna hyperparameter search over β, θ, learning rate, slope and dropout.

Each trial is an ordinary training run in ``<out>/trials/trial-NNNN/`` whose objective is
the best validation accuracy (the test split is never used for the search; its accuracy
is stored as a trial attribute). The validation accuracy of every epoch is reported to
Optuna, and a pruner (median by default) stops hopeless trials early.

Storage: a local SQLite file ``<out>/study.db`` by default, or any Optuna RDB storage URL
(``postgresql://…``, ``mysql://…``) shared by several ``qsnn sweep`` workers. A path
without ``://`` is taken as an SQLite file. Resuming is running the same command again:
the study (same name and storage) continues up to ``--trials`` finished trials. Trials
record a heartbeat; a trial whose process died (no heartbeat for ``2 × heartbeat``
seconds) is marked failed and retried with the same parameters, continuing from the
dead trial's ``last.pt``. A study made from a different base config is refused.

Outputs (atomic): ``best.json`` (best trial, parameters, counts), ``best.yaml`` (the base
config with the best parameters, ready for ``qsnn train``), ``trials.md``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsnn import atomic, config, fingerprint
from qsnn.config import RunConfig
from qsnn.errors import QsnnError


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its config key and range."""

    key: str
    low: float
    high: float
    log: bool


# The seed's 4-bit FashionMNIST values (β 0.974, θ 2.473, lr 2.9e-3, slope 5.56,
# dropout 0.074) lie inside every range.
SPACE: dict[str, Param] = {
    "beta": Param("model.beta", 0.5, 0.995, False),
    "threshold": Param("model.threshold", 0.25, 4.0, True),
    "lr": Param("train.lr", 1e-4, 1e-2, True),
    "slope": Param("model.slope", 1.0, 50.0, True),
    "dropout": Param("model.dropout", 0.0, 0.5, False),
}
PRUNERS = ("median", "none")
TRIAL_DIR = "trials"
Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def search_space(names: Sequence[str], ranges: Sequence[str], cfg: RunConfig,
                 log: Log = _stderr) -> dict[str, Param]:
    """The searched parameters: ``names`` with ``NAME=LOW:HIGH`` range overrides.

    ``dropout`` is left out (with a note) when the config's layers have no dropout token,
    where it would change nothing.
    """
    chosen = list(dict.fromkeys(names))
    for n in chosen:
        if n not in SPACE:
            raise QsnnError(f"unknown sweep parameter '{n}' (valid: {', '.join(SPACE)})")
    space = {n: SPACE[n] for n in chosen}
    for item in ranges:
        name, _, span = item.partition("=")
        low, _, high = span.partition(":")
        if name not in space:
            raise QsnnError(f"--range {item}: '{name}' is not a searched parameter")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise QsnnError(f"--range {item}: expected NAME=LOW:HIGH with numbers") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise QsnnError(f"--range {item}: LOW and HIGH must be finite numbers")
        if not lo < hi or (space[name].log and lo <= 0):
            raise QsnnError(f"--range {item}: need LOW < HIGH (and LOW > 0 for '{name}')")
        space[name] = Param(space[name].key, lo, hi, space[name].log)
    if "dropout" in space and "dropout" not in cfg.model.layers:
        log("qsnn sweep: note: the config has no dropout layer; dropout is not searched")
        del space["dropout"]
    if not space:
        raise QsnnError("nothing to search: no parameters")
    return space


def storage_url(storage: str | None, out: Path) -> str:
    """The Optuna storage URL: default ``sqlite:///<out>/study.db``; bare paths are SQLite."""
    if storage is None:
        return f"sqlite:///{(out / 'study.db').resolve()}"
    if "://" not in storage:
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


def _safe_url(url: str) -> str:
    """``url`` with any password masked (for messages and ``best.json``)."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        cred, _, host = tail.rpartition("@")
        user = cred.split(":", 1)[0]
        return f"{head}://{user}:***@{host}"
    return url


def open_storage(url: str, heartbeat: int) -> Any:
    """An Optuna RDB storage with heartbeats; a corrupt or unreachable one is one line."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if path.exists() and not path.is_file():
            raise QsnnError(f"Optuna storage {path} is not a file")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/optuna raise many types
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise QsnnError(f"cannot open Optuna storage {_safe_url(url)} (corrupt or "
                        f"incompatible?): {type(exc).__name__}: {first}") from None


def open_study(storage: Any, name: str, base: RunConfig, space: dict[str, Param],
               seed: int, pruner: Any) -> Any:
    """Create or load study ``name``; a different base config or space is refused."""
    import optuna

    vary = [tuple(p.key.split(".")) for p in space.values()]
    h = fingerprint.config_hash(base, vary)
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True,
            pruner=pruner)
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise QsnnError(f"cannot open Optuna study '{name}': {type(exc).__name__}: "
                        f"{first}") from None
    # A fresh seed per (re)start: the same sampler seed in a resumed process would repeat
    # the first process's suggestions. Deterministic for a given study history.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
    attrs = study.user_attrs
    space_json = {n: [p.key, p.low, p.high, p.log] for n, p in space.items()}
    if "config_hash" not in attrs:
        study.set_user_attr("config_hash", h)
        study.set_user_attr("config", fingerprint.config_dict(base, vary))
        study.set_user_attr("space", space_json)
    elif attrs["config_hash"] != h:
        diffs = fingerprint.differences(attrs.get("config", {}),
                                        fingerprint.config_dict(base, vary))
        raise QsnnError(f"study '{name}' was made from a different configuration "
                        f"({', '.join(diffs[:5]) or 'config'} differ); use another --study")
    elif attrs.get("space") != json.loads(json.dumps(space_json)):
        raise QsnnError(f"study '{name}' searches a different space "
                        f"({', '.join(attrs.get('space', {}))}); use another --study")
    return study


def make_pruner(name: str, startup_trials: int) -> Any:
    """Optuna pruner: ``median`` (after ``startup_trials`` trials, from epoch 2) or none."""
    import optuna

    if name not in PRUNERS:
        raise QsnnError(f"unknown pruner '{name}' (valid: {', '.join(PRUNERS)})")
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=2)


def trial_config(base: RunConfig, trial: Any, space: dict[str, Param], study: str,
                 number: int) -> RunConfig:
    """``base`` with the trial's suggested parameters."""
    sets = [f"name={study}-trial-{number:04d}"]
    for name, p in space.items():
        sets.append(f"{p.key}={trial.suggest_float(name, p.low, p.high, log=p.log)!r}")
    return config.apply_overrides(base, sets)


def objective(base: RunConfig, space: dict[str, Param], out: Path, study_name: str,
              log: Log) -> Callable[[Any], float]:
    """Optuna objective: train one trial, report val accuracy per epoch, prune."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from qsnn.train.runner import train

    def run(trial: Any) -> float:
        origin = RetryHeartbeatStaleTrialCallback.retried_trial_number(_frozen(trial))
        number = trial.number if origin is None else origin
        cfg = trial_config(base, trial, space, study_name, number)
        run_dir = out / TRIAL_DIR / f"trial-{number:04d}"
        resume = (run_dir / "last.pt").is_file()
        if resume:  # a retried trial: report the epochs its dead predecessor finished
            for line in _history(run_dir):
                trial.report(line["val_accuracy"], line["epoch"])
        how = f"resumes trial {number}" if resume else "new"
        log(f"qsnn sweep: trial {trial.number} ({how}): "
            + ", ".join(f"{k}={v:.4g}" for k, v in trial.params.items()))

        def on_epoch(line: dict[str, Any]) -> None:
            trial.report(line["val_accuracy"], line["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {line['epoch']}")

        result = train(cfg, run_dir, resume=resume, force=not resume, on_epoch=on_epoch)
        trial.set_user_attr("test_accuracy", result["test_accuracy"])
        trial.set_user_attr("run", str(run_dir))
        return float(result["best_val_accuracy"])

    return run


def _frozen(trial: Any) -> Any:
    """The running ``trial`` as a FrozenTrial (what Optuna's retry helpers read)."""
    from optuna.trial import TrialState

    running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return next(t for t in running if t.number == trial.number)


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(t) for t in path.read_text().splitlines() if t.strip()]


def finished(study: Any) -> int:
    """Trials that count towards ``--trials``: complete or pruned."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False,
                                states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_sweep(base: RunConfig, out: str | Path, *, trials: int, study_name: str | None = None,
              storage: str | None = None, params: Sequence[str] = tuple(SPACE),
              ranges: Sequence[str] = (), pruner: str | Any = "median",
              startup_trials: int = 3, seed: int = 0, heartbeat: int = 30,
              timeout: float | None = None, log: Log = _stderr) -> dict[str, Any]:
    """Run (or continue) a sweep until ``trials`` trials finished; returns ``best.json``."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if trials < 1:
        raise QsnnError("--trials must be at least 1")
    if heartbeat < 1:
        raise QsnnError("--heartbeat must be at least 1 second")
    if base.data.val_fraction <= 0:
        raise QsnnError("a sweep needs a validation split (data.val_fraction > 0): "
                        "the test split is never used for the search")
    out = Path(out)
    name = study_name or base.name
    space = search_space(params, ranges, base, log)
    prune = make_pruner(pruner, startup_trials) if isinstance(pruner, str) else pruner
    url = storage_url(storage, out)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(open_storage(url, heartbeat), name, base, space, seed, prune)
    remaining = trials - finished(study)
    log(f"qsnn sweep: study '{name}' in {_safe_url(url)}: {finished(study)} finished, "
        f"{max(remaining, 0)} to go")
    if remaining > 0:
        done = (TrialState.COMPLETE, TrialState.PRUNED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective(base, space, out, name, log), n_trials=remaining,
                           timeout=timeout, catch=(),
                           callbacks=[MaxTrialsCallback(trials, states=done),
                                      _trial_logger(log)])
    summary = summarize(study, name, url, base, space)
    write_outputs(out, summary, base, space)
    return summary


def _trial_logger(log: Log) -> Callable[[Any, Any], None]:
    def callback(study: Any, trial: Any) -> None:
        value = "—" if trial.value is None else f"{trial.value:.4f}"
        log(f"qsnn sweep: trial {trial.number} {trial.state.name.lower()}: val {value}")
    return callback


def summarize(study: Any, name: str, url: str, base: RunConfig,
              space: dict[str, Param]) -> dict[str, Any]:
    """The contents of ``best.json``."""
    from optuna.trial import TrialState

    all_trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in all_trials) for s in TrialState}
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    return {
        "study": name, "storage": _safe_url(url), "config_name": base.name,
        "config_hash": study.user_attrs.get("config_hash"),
        "space": {n: {"key": p.key, "low": p.low, "high": p.high, "log": p.log}
                  for n, p in space.items()},
        "trials": {k: v for k, v in counts.items() if v},
        "best": None if best is None else {
            "trial": best.number, "val_accuracy": best.value, "params": best.params,
            "test_accuracy": best.user_attrs.get("test_accuracy"),
            "run": best.user_attrs.get("run")},
        "all": [{"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                 "params": t.params, "epochs": len(t.intermediate_values),
                 "test_accuracy": t.user_attrs.get("test_accuracy")} for t in all_trials],
    }


def write_outputs(out: Path, summary: dict[str, Any], base: RunConfig,
                  space: dict[str, Param]) -> None:
    """``best.json``, ``best.yaml`` (if a trial completed) and ``trials.md``."""
    atomic.write_json(out / "best.json", summary)
    best = summary["best"]
    if best is not None:
        sets = [f"name={summary['study']}-best"]
        sets += [f"{space[n].key}={v!r}" for n, v in best["params"].items() if n in space]
        atomic.write_text(out / "best.yaml", config.dump(config.apply_overrides(base, sets)))
    names = list(space)
    lines = [f"# Sweep `{summary['study']}` (config `{summary['config_name']}`)", "",
             "| trial | state | epochs | val | test | " + " | ".join(names) + " |",
             "|---" * (5 + len(names)) + "|"]
    for t in summary["all"]:
        val = "—" if t["value"] is None else f"{100 * t['value']:.2f}"
        test = "—" if t["test_accuracy"] is None else f"{100 * t['test_accuracy']:.2f}"
        vals = [f"{t['params'][n]:.4g}" if n in t["params"] else "—" for n in names]
        lines.append(f"| {t['trial']} | {t['state']} | {t['epochs']} | {val} | {test} | "
                     + " | ".join(vals) + " |")
    atomic.write_text(out / "trials.md", "\n".join(lines) + "\n")
