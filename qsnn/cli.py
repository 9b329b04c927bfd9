"""The ``qsnn`` command: thin argument parsing over in-memory functions.

Each subcommand is ``add_<name>(subparsers)`` registering ``func(args) -> int``.
User errors (:class:`~qsnn.errors.QsnnError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qsnn import __version__
from qsnn.errors import QsnnError

DEFAULT_CONFIG = "configs/digits.yaml"


def _train(args: argparse.Namespace) -> int:
    from qsnn import config
    from qsnn.train.runner import train

    cfg = config.load(args.config)
    overrides = list(args.set or [])
    flag_map = {
        "epochs": "train.epochs", "lr": "train.lr", "batch_size": "train.batch_size",
        "seed": "train.seed", "device": "train.device", "schedule": "train.schedule",
        "precision": "model.precision", "data_dir": "data.data_dir",
        "time_steps": "data.time_steps", "name": "name",
    }
    for attr, key in flag_map.items():
        value = getattr(args, attr)
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = config.apply_overrides(cfg, overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    train(cfg, out, resume=args.resume, force=args.force)
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a quantized SNN from a YAML config")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)")
    p.add_argument("--out", help="run folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config key (repeatable)")
    for flag, typ in (("epochs", int), ("lr", float), ("batch-size", int), ("seed", int),
                      ("device", str), ("schedule", str), ("precision", str),
                      ("data-dir", str), ("time-steps", int), ("name", str)):
        p.add_argument(f"--{flag}", type=typ, help="override the config value")
    p.set_defaults(func=_train)


def _export(args: argparse.Namespace) -> int:
    from qsnn.export.runner import export

    run = Path(args.run)
    out = Path(args.out) if args.out else Path("build") / run.name
    vectors = None if args.vectors == "all" else int(args.vectors)
    from qsnn.export.ir import MAX_MEMBRANE_BITS

    if args.membrane_bits is not None and not 2 <= args.membrane_bits <= MAX_MEMBRANE_BITS:
        raise QsnnError(f"--membrane-bits {args.membrane_bits}: must be in "
                        f"2..{MAX_MEMBRANE_BITS}")
    report = export(run, out, vectors=vectors, membrane_bits=args.membrane_bits,
                    qonnx=not args.no_qonnx)
    print(f"exported {run} -> {out}: agreement {report['agreement']:.4f}, golden accuracy "
          f"{report['golden_accuracy']:.4f} (torch {report['torch_accuracy']:.4f}) on "
          f"{report['test_images']} test images; membrane bits {report['membrane_bits']}")
    return 0


def _vectors(text: str) -> str:
    if text != "all" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError("must be a positive integer or 'all'")
    return text


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained run to the integer IR, QONNX and NIR")
    p.add_argument("run", help="run folder, e.g. runs/digits")
    p.add_argument("--out", help="output folder (default: build/<run name>)")
    p.add_argument("--vectors", default="64", type=_vectors,
                   help="golden test vectors: N images or 'all' (default: %(default)s)")
    p.add_argument("--membrane-bits", type=int, help="membrane width (default: minimal safe)")
    p.add_argument("--no-qonnx", action="store_true", help="skip the QONNX export")
    p.set_defaults(func=_export)


def _eval(args: argparse.Namespace) -> int:
    from qsnn.export.runner import evaluate

    res = evaluate(args.build, args.data_dir)
    print(f"golden accuracy {res['golden_accuracy']:.4f} on {res['test_images']} "
          f"{res['dataset']} test images")
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="golden-model accuracy of an exported IR")
    p.add_argument("build", help="export folder, e.g. build/digits")
    p.add_argument("--data-dir", help="dataset folder (for mnist, dvs-gesture, ...)")
    p.set_defaults(func=_eval)


def _hw(args: argparse.Namespace) -> int:
    build = Path(args.build)
    if args.images < 1:
        raise QsnnError(f"--images {args.images}: must be at least 1")
    if args.estimate:
        from qsnn.hw.cycles import estimate_report

        print(estimate_report(build, args.lanes, args.images))
        return 0
    from qsnn.hw.generate import generate

    out = Path(args.out) if args.out else Path("hw/build") / build.name
    params = generate(build, out, lanes=args.lanes,
                      runtime_weights=_layer_list(args.runtime_weights))
    sizes = ", ".join(f"{p['n_in']}->{p['n']}" for p in params["layers"])
    rt = params["runtime_weights"]
    print(f"generated {out}: qsnn_top ({sizes}), {args.lanes} lanes, "
          f"T={params['time_steps']}, {params['encoding']} input"
          + (f"; layers {rt} load their weights at run time ({params['weight_bytes']} bytes, "
             f"{out / 'weights.bin'})" if rt else ""))
    return 0


def _layer_list(text: str | None) -> tuple[int, ...] | str:
    """'--runtime-weights 0,1' -> (0, 1); 'all' stays 'all' (checked by the generator)."""
    if not text:
        return ()
    if text == "all":
        return "all"
    try:
        return tuple(sorted({int(v) for v in text.split(",")}))
    except ValueError:
        raise QsnnError(f"--runtime-weights {text!r}: give layer indices like 0 or 0,1, "
                        "or all") from None


def add_hw(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hw", help="generate the Verilog accelerator for an exported IR")
    p.add_argument("build", help="export folder, e.g. build/digits")
    p.add_argument("--lanes", type=int, default=4, help="parallel lanes P (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: hw/build/<name>)")
    p.add_argument("--runtime-weights", metavar="LAYERS",
                   help="layers (e.g. 0 or 0,1, or all) whose weights live in RAM loaded "
                        "at run time over the UART (weights.bin) instead of ROM: iCE40 "
                        "SPRAM for networks whose weights exceed the block RAM")
    p.add_argument("--estimate", action="store_true",
                   help="print the cycle model's cycles per inference and memory bits")
    p.add_argument("--images", type=int, default=64,
                   help="golden inputs the estimate averages over (default: %(default)s)")
    p.set_defaults(func=_hw)


def _verify(args: argparse.Namespace) -> int:
    from qsnn.hw.verify import verify

    images = None if args.images == "all" else int(args.images)
    rep = verify(args.build, args.hw, images=images, waves=args.waves, seed=args.seed,
                 simulator=args.simulator)
    print(f"verified {rep['images']} images: {rep['mismatches']} mismatches, RTL accuracy "
          f"{rep['accuracy']:.4f}, {rep['cycles_per_inference_mean']:.0f} cycles/inference "
          f"(model ratio {rep['cycles_model_ratio']:.3f}), "
          f"{rep['sim_images_per_second']:.1f} images/s simulated")
    if rep["first_mismatch"]:
        print(f"first mismatch: {rep['first_mismatch']}")
        return 1
    return 0


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="simulate the generated RTL against the golden model")
    p.add_argument("build", help="export folder, e.g. build/digits")
    p.add_argument("--hw", help="generated design (default: hw/build/<name>)")
    p.add_argument("--images", default="64", type=_vectors,
                   help="test images: N or 'all' (default: %(default)s)")
    p.add_argument("--waves", action="store_true",
                   help="keep a waveform of the run (per-cycle cocotb bench, Verilator)")
    p.add_argument("--seed", type=int, default=1, help="back-pressure seed")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="simulator of the free-running bench (default: %(default)s)")
    p.set_defaults(func=_verify)


def _run_board(args: argparse.Namespace) -> int:
    from qsnn.hw.host import run_on_port

    images = None if args.images == "all" else int(args.images)
    if not 0 < args.timeout < 3600:     # also refuses nan
        raise QsnnError(f"--timeout {args.timeout}: must be more than 0 and less than 3600 s")
    if args.baud < 1:
        raise QsnnError(f"--baud {args.baud}: must be positive")
    run_on_port(args.port, args.build, images=images, baud=args.baud, timeout_s=args.timeout,
                hw_dir=args.hw, load_weights=args.load_weights)
    return 0


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="stream test images to a programmed board over UART")
    p.add_argument("build", nargs="?", default="build/digits",
                   help="export folder of the design on the board (default: %(default)s)")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB1")
    p.add_argument("--board", help="board name (informational)")
    p.add_argument("--images", default="64", type=_vectors, help="N or 'all'")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per answer")
    p.add_argument("--hw", help="generated design, for its weights.bin when the board needs "
                                "run-time weights (default: hw/build/<name>)")
    p.add_argument("--load-weights", action="store_true",
                   help="send weights.bin even if the board reports its weights loaded")
    p.set_defaults(func=_run_board)


def _bitstream(args: argparse.Namespace) -> int:
    from qsnn.hw.fpga import bitstream, format_report

    hw = Path(args.hw)
    build = Path(args.build) if args.build else Path("build") / hw.name
    report = bitstream(hw, args.board, clock_mhz=args.clock_mhz, seed=args.seed,
                       build_dir=build if build.is_dir() else None)
    print(format_report(report))
    return 0


def add_bitstream(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bitstream", help="synthesize, place, route and pack a generated design")
    p.add_argument("hw", help="generated design, e.g. hw/build/digits")
    p.add_argument("--board", required=True, help="icebreaker, ulx3s or orangecrab")
    p.add_argument("--clock-mhz", type=float, help="target clock (default: the board clock)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr seed (reproducible builds)")
    p.add_argument("--build", help="export folder of the IR (default: build/<name>)")
    p.set_defaults(func=_bitstream)


def _program(args: argparse.Namespace) -> int:
    import shlex

    from qsnn.hw.fpga import program

    cmd = program(args.bitstream, args.board, dry_run=args.dry_run)
    print(shlex.join(cmd))
    return 0


def add_program(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("program", help="load a bitstream onto a board with openFPGALoader")
    p.add_argument("bitstream", help="bitstream file (.bin / .bit)")
    p.add_argument("--board", required=True, help="icebreaker, ulx3s or orangecrab")
    p.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    p.set_defaults(func=_program)


def _base_config(args: argparse.Namespace):
    """The ``--config`` file with ``--epochs`` and ``--set`` overrides applied."""
    from qsnn import config

    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    return config.apply_overrides(config.load(args.config), overrides)


def _experiment_schedules(args: argparse.Namespace) -> int:
    from qsnn.experiment import make_grid, run_schedules

    grid = make_grid(args.precisions, args.schedules, args.seeds)
    base = _base_config(args)
    name = args.name or base.name
    out = Path(args.out) if args.out else Path("runs/experiments") / name
    summary = run_schedules(base, grid, out, name=name)
    for c in summary["cells"]:
        acc = c["test_accuracy"]
        std = "" if acc["std"] is None else f" ± {100 * acc['std']:.2f}"
        print(f"{c['precision']:>5} {c['schedule']:<16} test {100 * acc['mean']:.2f}{std} %")
    print(f"results: {out / 'results.md'}")
    return 0


def add_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run a study over many training runs")
    kinds = p.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("schedules", help="LR-schedule ablation: precisions x schedules x seeds")
    s.add_argument("--config", default=DEFAULT_CONFIG, help="base config (default: %(default)s)")
    s.add_argument("--precisions", nargs="+", default=["fp32", "int4"], metavar="P",
                   help="fp32, int2, int4, int8 (default: fp32 int4)")
    s.add_argument("--schedules", nargs="+", default=["constant", "cosine", "cosine-restarts"],
                   metavar="S", help="constant, cosine, cosine-restarts, step "
                   "(default: constant cosine cosine-restarts)")
    s.add_argument("--seeds", nargs="+", default=["0", "1", "2"], metavar="N",
                   help="training seeds (default: 0 1 2)")
    s.add_argument("--epochs", type=int, help="override train.epochs")
    s.add_argument("--out", help="experiment folder (default: runs/experiments/<name>)")
    s.add_argument("--name", help="experiment name (default: the config's name)")
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config key of the base config (repeatable)")
    s.set_defaults(func=_experiment_schedules)


def _sweep(args: argparse.Namespace) -> int:
    from qsnn.sweep import run_sweep

    base = _base_config(args)
    name = args.study or base.name
    out = Path(args.out) if args.out else Path("runs/sweeps") / name
    summary = run_sweep(base, out, trials=args.trials, study_name=name, storage=args.storage,
                        params=args.params, ranges=args.range or [], pruner=args.pruner,
                        startup_trials=args.startup_trials, seed=args.seed,
                        heartbeat=args.heartbeat, timeout=args.timeout)
    best = summary["best"]
    counts = ", ".join(f"{v} {k}" for k, v in summary["trials"].items())
    if best is None:
        print(f"study {name}: {counts}; no completed trial yet")
    else:
        params = ", ".join(f"{k}={v:.4g}" for k, v in best["params"].items())
        print(f"study {name}: {counts}; best trial {best['trial']}: val "
              f"{best['val_accuracy']:.4f} ({params}) -> {out / 'best.yaml'}")
    return 0


def add_sweep(sub: argparse._SubParsersAction) -> None:
    from qsnn.sweep import PRUNERS, SPACE

    p = sub.add_parser("sweep", help="Optuna hyperparameter search (beta, threshold, lr, ...)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="base config (default: %(default)s)")
    p.add_argument("--trials", type=int, default=20,
                   help="finished trials to reach, counting earlier ones (default: %(default)s)")
    p.add_argument("--study", help="study name (default: the config's name)")
    p.add_argument("--storage", help="Optuna storage URL or SQLite file "
                   "(default: <out>/study.db)")
    p.add_argument("--out", help="sweep folder (default: runs/sweeps/<study>)")
    p.add_argument("--params", nargs="+", default=list(SPACE), metavar="NAME",
                   help=f"parameters to search: {', '.join(SPACE)} (default: all)")
    p.add_argument("--range", action="append", metavar="NAME=LOW:HIGH",
                   help="override a parameter's search range (repeatable)")
    p.add_argument("--pruner", default="median", help=f"{', '.join(PRUNERS)} "
                   "(default: %(default)s)")
    p.add_argument("--startup-trials", type=int, default=3,
                   help="trials before pruning starts (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default: %(default)s)")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between trial "
                   "heartbeats; a trial silent for twice that is retried (default: %(default)s)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config key of the base config (repeatable)")
    p.set_defaults(func=_sweep)


COMMANDS = (add_train, add_export, add_eval, add_hw, add_verify, add_bitstream, add_program,
            add_run, add_experiment, add_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"qsnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QsnnError as exc:
        print(f"qsnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qsnn: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:     # a full disk, a read-only folder, ...: outputs are staged
        where = f": {exc.filename}" if exc.filename else ""
        print(f"qsnn: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
