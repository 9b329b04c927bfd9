"""The ``qsnn`` command: thin argument parsing over in-memory functions.

Each subcommand is ``add_<name>(subparsers)`` registering ``func(args) -> int``.
User errors (:class:`~qsnn.errors.QsnnError`) print one line and exit with status 2.
Help texts are plain text (no reStructuredText markup: ``tests/test_cli_help.py``).
A command that needs an optional dependency checks its extra first (:mod:`qsnn.extras`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qsnn import __version__
from qsnn.configs import shipped
from qsnn.errors import QsnnError
from qsnn.extras import require

DESCRIPTION = ("Train 4-bit quantized spiking neural networks, export them to an integer IR, "
               "QONNX and NIR, generate and verify their FPGA accelerator.")
DEFAULT_CONFIG = "digits"


def _config_help(what: str) -> str:
    return (f"{what}: a YAML file, or the name of a shipped config "
            f"({', '.join(shipped())}) (default: %(default)s)")


def _train(args: argparse.Namespace) -> int:
    from qsnn import config
    from qsnn.train.runner import train

    cfg = config.load(args.config)
    overrides = list(args.set or [])
    flag_map = {
        "epochs": "train.epochs", "lr": "train.lr", "batch_size": "train.batch_size",
        "seed": "train.seed", "device": "train.device", "schedule": "train.schedule",
        "precision": "model.precision", "data_dir": "data.data_dir",
        "time_steps": "data.time_steps", "name": "name", "init_from": "train.init_from",
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
    p.add_argument("--config", default=DEFAULT_CONFIG, help=_config_help("run config"))
    p.add_argument("--out", help="run folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config key (repeatable)")
    for flag, typ in (("epochs", int), ("lr", float), ("batch-size", int), ("seed", int),
                      ("device", str), ("schedule", str), ("precision", str),
                      ("data-dir", str), ("time-steps", int), ("name", str)):
        p.add_argument(f"--{flag}", type=typ, help="override the config value")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from the weights of this checkpoint or run folder (the same "
                        "network; time steps and optimiser may differ), e.g. to fine-tune a "
                        "T = 25 model at T = 100")
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


def _import(args: argparse.Namespace) -> int:
    from qsnn.export.import_runner import import_nir

    rep = import_nir(args.nir, Path(args.out), bits=args.bits, calibration=args.calibration,
                     time_steps=args.time_steps, dt=args.dt, input_scale=args.input_scale,
                     data_dir=args.data_dir)
    t = rep["test"]
    print(f"imported {args.nir} -> {args.out}: {rep['weight_bits']}-bit, T={rep['time_steps']}; "
          f"agreement with the float NIR network {t['agreement']:.4f} on {t['images']} "
          f"{rep['dataset']} test images (float accuracy {t['float_accuracy']:.4f}, integer "
          f"{t['integer_accuracy']:.4f})")
    return 0


def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a NIR graph (snnTorch, Norse, ...) into the IR")
    p.add_argument("nir", help="NIR file, e.g. model.nir")
    p.add_argument("--out", required=True, help="output folder, e.g. build/<name>")
    p.add_argument("--bits", type=int, default=4, help="weight bits (default: %(default)s)")
    p.add_argument("--calibration", metavar="DATA",
                   help="dataset for the agreement check and golden vectors (digits, "
                        "fashion-mnist, mnist; default: the file's metadata)")
    p.add_argument("--time-steps", type=int, help="time steps T (default: the file's metadata)")
    p.add_argument("--dt", type=float, help="seconds per step (default: metadata, else 1e-4)")
    p.add_argument("--input-scale", type=float,
                   help="float input = pixel * scale (default: metadata, else 1/pixel_max)")
    p.add_argument("--data-dir", help="dataset folder (for mnist, ...)")
    p.set_defaults(func=_import)


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
    lanes, pool = _lanes_option(args.lanes), _pool_option(args.pool)
    if args.estimate:
        from qsnn.export import serialize
        from qsnn.hw.cycles import estimate_report
        from qsnn.hw.layers import layer_params

        layers = layer_params(serialize.load(build), lanes, pool=pool, board=args.board,
                              note=_note, membranes=_pool_option(args.membranes))
        print(estimate_report(build, layers, args.images))
        return 0
    from qsnn.hw.generate import generate

    out = Path(args.out) if args.out else Path("hw/build") / build.name
    params = generate(build, out, lanes=lanes, runtime_weights=_layer_list(args.runtime_weights),
                      pool=pool, board=args.board, note=_note,
                      membranes=_pool_option(args.membranes))
    sizes = ", ".join(_layer_text(p) for p in params["layers"])
    rt = params["runtime_weights"]
    print(f"generated {out}: qsnn_top ({sizes}), {args.lanes} lanes, "
          f"T={params['time_steps']}, {params['encoding']} input"
          + (f"; layers {rt} load their weights at run time ({params['weight_bytes']} bytes, "
             f"{out / 'weights.bin'})" if rt else ""))
    return 0


def _note(line: str) -> None:
    print(f"note: {line}")


def _layer_text(p: dict) -> str:
    """``784->128`` or ``conv 1x28x28->16x12x12 fused``."""
    if (p["h_in"], p["w_in"], p["kernel"], p["pool"]) == (1, 1, 1, 1):
        return f"{p['n_in']}->{p['n']}"
    ho = (p["h_in"] + 2 * p["pad"] - p["kernel"] + 1) // p["pool"]
    wo = (p["w_in"] + 2 * p["pad"] - p["kernel"] + 1) // p["pool"]
    pool = "" if p["pool"] == 1 else (" fused" if p["fused"] else " map")
    return f"conv {p['n_in']}x{p['h_in']}x{p['w_in']}->{p['n']}x{ho}x{wo}{pool}"


def _lanes_option(text: str) -> int | tuple[int, ...]:
    """'--lanes 16' -> 16; '--lanes 16,64,10' -> one value per layer."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise QsnnError(f"--lanes {text!r}: give a number of lanes like 4, or one per layer "
                        "like 16,64,10") from None
    return values[0] if len(values) == 1 else values


def _pool_option(text: str) -> str | tuple[str, ...]:
    """'--pool auto' -> 'auto'; '--pool fused,map' -> one mode per conv layer."""
    values = tuple(text.split(","))
    return values[0] if len(values) == 1 else values


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
    p.add_argument("--lanes", default="4",
                   help="parallel lanes P, or one per layer (e.g. 16,64,10); capped at each "
                        "layer's output channels/neurons (default: %(default)s)")
    p.add_argument("--pool", default="auto",
                   help="pooling of conv layers: fused (faster, wider weights), map (pool as "
                        "an address map, fewer weight bits) or auto (fused where its weights "
                        "take at most half of the --board's block RAM); or one per conv "
                        "layer, e.g. fused,map (default: %(default)s)")
    p.add_argument("--board", default="icebreaker",
                   help="target board whose block RAM --pool auto plans for (default: "
                        "%(default)s)")
    p.add_argument("--membranes", default="bram",
                   help="where each layer keeps its membranes (V, and C of a direct-input "
                        "layer): bram (block RAM, a chunk per cycle) or spram (iCE40 "
                        "SPRAM, 2 cycles per chunk); or one per layer, e.g. spram,bram,bram "
                        "(default: %(default)s)")
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
    require("hw", "qsnn verify")
    from qsnn.hw.verify import verify

    if args.trace_image is not None and args.netlist:
        raise QsnnError("--trace-image traces the RTL; it cannot be combined with --netlist")
    if args.trace_image is not None:
        return _trace(args)
    images = None if args.images == "all" else int(args.images)
    if args.netlist:
        return _verify_netlist(args, images)
    rep = verify(args.build, args.hw, images=images, waves=args.waves, seed=args.seed,
                 simulator=args.simulator)
    print(f"verified {rep['images']} images: {rep['mismatches']} mismatches, RTL accuracy "
          f"{rep['accuracy']:.4f}, {rep['cycles_per_inference_mean']:.0f} cycles/inference "
          f"(model ratio {rep['cycles_model_ratio']:.3f}, {rep['cycles_model_exact']} of "
          f"{rep['images']} exact; {rep['cycles_bound_ratio']:.3f} x the event-driven "
          f"bound), {rep['sim_images_per_second']:.1f} images/s simulated")
    if rep["first_mismatch"]:
        print(f"first mismatch: {rep['first_mismatch']}")
        return 1
    return 0


def _trace(args: argparse.Namespace) -> int:
    """``qsnn verify --trace-image I``: per-layer spike trains and membranes of one image."""
    from qsnn.hw.verify import compare_trace

    build = Path(args.build)
    hw = Path(args.hw) if args.hw else Path("hw/build") / build.name
    rows = compare_trace(build, hw, args.trace_image, args.seed)
    for r in rows:
        parts = []
        for what in ("spikes", "membranes"):
            d = r[what]
            parts.append(f"{what} equal" if d["equal"] else f"{what} differ first at step "
                         f"{d['first_difference']['time_step']}, neuron "
                         f"{d['first_difference']['neuron']}")
        print(f"layer {r['layer']} ({r['name']}): {r['spikes']['total']} spikes; "
              + ", ".join(parts))
    return 0 if all(r["spikes"]["equal"] and r["membranes"]["equal"] for r in rows) else 1


def _verify_netlist(args: argparse.Namespace, images: int | None) -> int:
    require("fpga", "qsnn verify --netlist")
    from qsnn.hw.verify import verify_netlist

    if args.waves:
        raise QsnnError("--waves is for the RTL benches, not --netlist")
    rep = verify_netlist(args.build, args.hw, args.netlist, images=images, seed=args.seed,
                         simulator=args.simulator)
    print(f"gate-level {rep['board']} ({rep['family']}, UART {rep['clks_per_bit']} clocks "
          f"per bit, no PLL), {rep['simulator']}: {rep['images']} images, "
          f"{rep['mismatches']} mismatches (predictions and spike counts), accuracy "
          f"{rep['accuracy']:.4f}, {rep['sim_images_per_second']:.2f} images/s, "
          f"{rep['sim_cycles_per_second']:.0f} cycles/s simulated")
    for err in rep["errors"]:
        print(f"error: {err}")
    first = rep["first_mismatch"]
    if first is not None:
        print(f"first mismatch: image {first['image']}: {first['what']}")
    return 1 if rep["errors"] or rep["mismatches"] else 0


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
    p.add_argument("--trace-image", type=int, metavar="I",
                   help="instead: record every layer's spike trains and membranes of test "
                        "image I in the RTL (cocotb bench) and compare them with the golden "
                        "model's (trace_report.json)")
    p.add_argument("--netlist", metavar="ice40|ecp5|BOARD",
                   help="simulate the synthesized board netlist of the bitstream behind its "
                        "UART pins instead of the RTL (vendor cell models, no PLL, UART at "
                        "8 clocks per bit)")
    p.set_defaults(func=_verify)


def _run_board(args: argparse.Namespace) -> int:
    require("fpga", "qsnn run", only=("pyserial",))
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
    s.add_argument("--config", default=DEFAULT_CONFIG, help=_config_help("base config"))
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
    require("sweep", "qsnn sweep")
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
    p.add_argument("--config", default=DEFAULT_CONFIG, help=_config_help("base config"))
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


COMMANDS = (add_train, add_export, add_import, add_eval, add_hw, add_verify, add_bitstream,
            add_program,
            add_run, add_experiment, add_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsnn", description=DESCRIPTION)
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
