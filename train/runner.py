"""A training run: data, model, optimiser, epochs, checkpoints and outputs in ``runs/<name>/``.

Outputs (all written atomically, by rank 0 only):

- ``config.yaml``    the resolved config
- ``last.pt``        full state after the last completed epoch (for ``--resume``)
- ``best.pt``        model with the best validation accuracy (model selection never
                     looks at the test split; with no validation split, the last epoch)
- ``metrics.jsonl``  one line per epoch: epoch, lr, train_loss, train_accuracy,
                     val_accuracy, seconds
- ``curves.png``     loss, accuracy and LR against epochs (redrawn at most every
                      ``PLOT_INTERVAL_S`` during the run, and at its end)
- ``result.json``    dataset, precision, epochs, best_val_accuracy, test_accuracy, ...
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from qsnn import atomic, outdir
from qsnn.config import RunConfig, dump
from qsnn.data import DatasetSplits, load_dataset, subset, train_val_split
from qsnn.errors import QsnnError
from qsnn.train import checkpoint, distributed, perf
from qsnn.train.distributed import DistInfo
from qsnn.train.loop import accuracy, make_sampler, train_epoch
from qsnn.train.losses import make_loss
from qsnn.train.model import QSNN
from qsnn.train.plots import plot_curves
from qsnn.train.schedules import make_scheduler

RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "curves.png", "result.json")
# ``curves.png`` is redrawn after an epoch only if the last drawing is this old (a
# drawing costs ~0.25 s, a third of a digits epoch), and always when the run finishes.
PLOT_INTERVAL_S = 30.0
# Test hook: SIGKILL this process right after saving the checkpoint of this epoch.
KILL_ENV = "QSNN_TEST_KILL_AFTER_EPOCH"


def load_data(cfg: RunConfig) -> DatasetSplits:
    """The configured dataset, with the optional train/test caps applied."""
    d = cfg.data
    data = load_dataset(d.dataset, d.data_dir, time_steps=d.time_steps,
                        frame_size=d.frame_size, download=d.download)
    if (data.kind == "events") != (d.encoding == "events"):
        raise QsnnError(
            f"dataset '{d.dataset}' is {data.kind} data but data.encoding is '{d.encoding}'"
        )
    return DatasetSplits(
        name=data.name, train=subset(data.train, d.max_train), test=subset(data.test, d.max_test),
        num_classes=data.num_classes, input_shape=data.input_shape,
        pixel_max=data.pixel_max, kind=data.kind,
    )


def build_model(cfg: RunConfig, data: DatasetSplits) -> QSNN:
    """The network for ``cfg`` on ``data``'s input shape and classes."""
    check_memory(cfg, data)
    return QSNN(cfg, data.input_shape, data.num_classes, data.pixel_max)


def check_memory(cfg: RunConfig, data: DatasetSplits) -> None:
    """Refuse (one line), before allocating, a run whose time steps cannot fit in memory.

    A training batch keeps its currents for every time step: at least
    ``T * batch * sum(out_ch) * 4`` bytes (float32; a lower bound: a conv map has at
    least one pixel per channel), and a rate-coded input table of ``T * pixels`` bytes."""
    from qsnn.train.model import parse_layers

    specs = parse_layers(cfg.model.layers, data.input_shape)
    batch = min(cfg.train.batch_size, max(1, len(data.train.y)))
    need = cfg.data.time_steps * (batch * 4 * sum(s.out_ch for s in specs)
                                  + math.prod(data.input_shape))
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise QsnnError(f"data.time_steps {cfg.data.time_steps} needs at least "
                        f"{need / 2**30:.0f} GiB of memory for a batch of {batch} (this machine "
                        f"has {have / 2**30:.0f} GiB): lower data.time_steps or train.batch_size")


def prepare_out_dir(out: Path, resume: bool, force: bool) -> bool:
    """Check the run folder before anything is written to it (rules of :mod:`qsnn.outdir`).

    Returns True when ``--force`` replaces a run that holds trained epochs: the new run is
    then trained in a staging folder and swapped in at its end, so that a kill leaves the
    old run whole. A folder whose run never finished an epoch (no ``last.pt``: refused or
    killed early) holds nothing to lose and is started afresh without ``--force``."""
    if resume:
        if out.is_file():
            raise QsnnError(f"--resume: {out} is a file, not a run folder")
        if not (out / "last.pt").is_file():
            why = ("the run stopped before its first epoch ended: start it again without "
                   "--resume" if (out / "config.yaml").is_file() else "there is no run there")
            raise QsnnError(f"--resume: no checkpoint {out / 'last.pt'} to resume from ({why})")
        return False
    outdir.check(out, "run")
    trained = (out / "last.pt").is_file() or (out / "best.pt").is_file()
    if trained and not force:
        raise QsnnError(f"run folder {out} already holds a run; pass --resume or --force")
    return trained


def start_folder(folder: Path, cfg: RunConfig, fresh: bool) -> None:
    """Create the run folder (marker, ``config.yaml``); ``fresh`` clears an old start."""
    folder.mkdir(parents=True, exist_ok=True)
    if fresh:
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
    atomic.write_text(folder / "config.yaml", dump(cfg))
    if fresh:
        outdir.write_marker(folder, "run")


class Run:
    """State of one training run (see the module docstring for its files)."""

    def __init__(self, cfg: RunConfig, out: Path, info: DistInfo) -> None:
        self.cfg, self.out, self.info = cfg, out, info
        self.data = load_data(cfg)
        self.train_split, self.val_split = train_val_split(
            self.data.train, cfg.data.val_fraction, cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, self.data).to(info.device)
        self.net = self.model
        if info.world > 1:
            ids = [info.device.index] if info.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        t = cfg.train
        self.opt = torch.optim.Adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.sampler = make_sampler(len(self.train_split.y), info.rank, info.world, t.seed)
        iters = math.ceil(len(self.sampler) / t.batch_size)
        self.sched = make_scheduler(self.opt, t, iters)
        self.loss_fn = make_loss(t)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": -1, "val_accuracy": -1.0}
        self.seconds = 0.0
        self.plotted_at = -math.inf

    def state(self) -> dict[str, Any]:
        """Everything needed to resume."""
        return {
            "config": self.cfg.to_dict(), "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "rng": torch.get_rng_state(), "history": self.history, "best": self.best,
            "seconds": self.seconds, "epoch": len(self.history),
        }

    def restore(self, path: Path) -> None:
        """Load ``last.pt``; the config must match except for :data:`RESUMABLE_KEYS`."""
        ckpt = checkpoint.load(path)
        diffs = checkpoint.config_differences(ckpt["config"], self.cfg.to_dict())
        if diffs:
            raise QsnnError(f"--resume with a different config: {', '.join(diffs[:5])} changed")
        checkpoint.load_model_state(self.model, ckpt, path)
        try:
            self.opt.load_state_dict(ckpt["optimizer"])
            self.sched.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng"])
            self.history, self.best = list(ckpt["history"]), dict(ckpt["best"])
            self.seconds = float(ckpt["seconds"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise QsnnError(f"corrupt checkpoint {path}: {type(exc).__name__}") from None

    def warm_start(self, spec: str) -> None:
        """Load the weights (and BatchNorm statistics) of ``train.init_from``.

        The saved network must be this one (:data:`checkpoint.INIT_KEYS` equal); time
        steps, optimiser and schedule may differ. Optimiser state is not carried over."""
        path = checkpoint.init_source(spec)
        ckpt = checkpoint.load(path)
        diffs = checkpoint.init_mismatches(ckpt["config"], self.cfg.to_dict())
        if diffs:
            raise QsnnError(f"train.init_from {path} is another network: "
                            f"{', '.join(diffs[:5])} differ")
        checkpoint.load_model_state(self.model, ckpt, path)

    def epoch(self, index: int) -> dict[str, Any]:
        """Train and validate one epoch; returns its metrics line."""
        t0 = time.perf_counter()
        lr = self.opt.param_groups[0]["lr"]
        self.sampler.set_epoch(index)
        loss, train_acc = train_epoch(
            self.model, self.net, self.train_split, self.sampler, self.opt, self.sched,
            self.loss_fn, self.cfg.train, self.info.device, self.info.is_main)
        val_acc = accuracy(self.model, self.val_split, self.cfg.train.eval_batch_size,
                           self.info.device)
        secs = time.perf_counter() - t0
        self.seconds += secs
        return {"epoch": index + 1, "lr": lr, "train_loss": loss, "train_accuracy": train_acc,
                "val_accuracy": None if math.isnan(val_acc) else val_acc, "seconds": secs}

    def save_epoch(self, line: dict[str, Any]) -> None:
        """Record an epoch; update best; write checkpoints, metrics and curves (rank 0)."""
        self.history.append(line)
        val = line["val_accuracy"]
        improved = val is None or val > self.best["val_accuracy"]
        if improved:
            self.best = {"epoch": line["epoch"], "val_accuracy": -1.0 if val is None else val}
        if not self.info.is_main:
            return
        if improved:
            checkpoint.save(self.out / "best.pt", {
                "config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "epoch": line["epoch"]})
        checkpoint.save(self.out / "last.pt", self.state())
        text = "".join(json.dumps(h, sort_keys=True) + "\n" for h in self.history)
        atomic.write_text(self.out / "metrics.jsonl", text)
        if time.monotonic() - self.plotted_at >= PLOT_INTERVAL_S:
            self.plot()

    def plot(self) -> None:
        """Redraw ``curves.png`` from the whole history (rank 0)."""
        plot_curves(self.history, self.out / "curves.png", self.cfg.name)
        self.plotted_at = time.monotonic()

    def finish(self) -> dict[str, Any]:
        """Evaluate the selected model on the test split; write ``result.json``."""
        best = checkpoint.load(self.out / "best.pt")
        checkpoint.load_model_state(self.model, best, self.out / "best.pt")
        test_acc = accuracy(self.model, self.data.test, self.cfg.train.eval_batch_size,
                            self.info.device)
        cfg = self.cfg
        result = {
            "name": cfg.name, "dataset": cfg.data.dataset, "precision": cfg.model.precision,
            "hardware_aware": cfg.hardware_aware, "encoding": cfg.data.encoding,
            "time_steps": cfg.data.time_steps, "epochs": len(self.history),
            "best_epoch": self.best["epoch"],
            "best_val_accuracy": self.best["val_accuracy"] if self.val_split.y.numel() else None,
            "test_accuracy": test_acc, "test_images": int(self.data.test.y.numel()),
            "seconds": round(self.seconds, 3), "world_size": self.info.world,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "init_from": cfg.train.init_from,
        }
        if self.info.is_main:
            self.plot()
            atomic.write_json(self.out / "result.json", result)
        return result


def log(info: DistInfo, msg: str) -> None:
    """Print on rank 0 only."""
    if info.is_main:
        print(msg, file=sys.stderr, flush=True)


EpochCallback = Callable[[dict[str, Any]], None]


def train(cfg: RunConfig, out: str | Path, *, resume: bool = False, force: bool = False,
          on_epoch: EpochCallback | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``out``; returns the contents of ``result.json``.

    ``on_epoch(line)`` (optional) is called in every process after each epoch's metrics
    line and checkpoints are saved; an exception from it stops the run there, leaving a
    resumable ``last.pt`` (the sweep uses it to report to and be pruned by Optuna).
    """
    out = Path(out)
    perf.keep_freed_memory()
    info = distributed.setup(cfg.train.device)
    lock = outdir.Lock(out) if info.is_main else None
    staging: Path | None = None
    try:
        prepare_out_dir(out, resume, force)     # refuse early, before loading the data
        run = Run(cfg, out, info)               # validates the rest; writes nothing
        if cfg.train.init_from is not None and not resume:
            run.warm_start(cfg.train.init_from)     # refused here too, before any write
        if lock is not None:
            outdir.make_parent(out)
            lock.acquire()
            outdir.sweep(out.parent)
            outdir.point("locked")
        replace = prepare_out_dir(out, resume, force)   # again, under the lock
        if resume:
            run.restore(out / "last.pt")
        if replace:     # train beside the old run; swapped in at the end
            staging = Path(distributed.broadcast(str(outdir.staging_path(out))))
            run.out = staging
        if info.is_main:
            start_folder(run.out, cfg, fresh=not resume)
        distributed.barrier()
        log(info, f"qsnn train: {cfg.name} on {info.device} x{info.world}, "
                  f"{len(run.train_split.y)} train / {len(run.val_split.y)} val images")
        for index in range(len(run.history), cfg.train.epochs):
            line = run.epoch(index)
            if not math.isfinite(line["train_loss"]):
                raise QsnnError(f"training diverged in epoch {index + 1} (loss "
                                f"{line['train_loss']}): lower train.lr")
            run.save_epoch(line)
            val = "n/a" if line["val_accuracy"] is None else f"{line['val_accuracy']:.4f}"
            log(info, f"epoch {line['epoch']:3d}/{cfg.train.epochs} lr {line['lr']:.3e} "
                      f"loss {line['train_loss']:.4f} train {line['train_accuracy']:.4f} "
                      f"val {val} ({line['seconds']:.1f}s)")
            if os.environ.get(KILL_ENV) == str(index + 1):
                os.kill(os.getpid(), signal.SIGKILL)
            if on_epoch is not None:
                on_epoch(line)
        distributed.barrier()
        result = run.finish()
        if replace and info.is_main:
            outdir.write_marker(staging, "run")
            outdir.swap(staging, out)
        distributed.barrier()
        log(info, f"test accuracy {result['test_accuracy']:.4f} "
                  f"(best epoch {result['best_epoch']}), {result['seconds']:.1f}s -> {out}")
        return result
    finally:
        if lock is not None:
            if staging is not None and staging.exists():
                shutil.rmtree(staging, ignore_errors=True)   # a failed --force run
            lock.release()
        distributed.teardown()
