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
    if args.estimate:
        from qsnn.hw.cycles import estimate_report

        print(estimate_report(build, args.lanes, args.images))
        return 0
    from qsnn.hw.generate import generate

    out = Path(args.out) if args.out else Path("hw/build") / build.name
    params = generate(build, out, lanes=args.lanes)
    sizes = ", ".join(f"{p['n_in']}->{p['n']}" for p in params["layers"])
    print(f"generated {out}: qsnn_top ({sizes}), {args.lanes} lanes, "
          f"T={params['time_steps']}, {params['encoding']} input")
    return 0


def add_hw(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hw", help="generate the Verilog accelerator for an exported IR")
    p.add_argument("build", help="export folder, e.g. build/digits")
    p.add_argument("--lanes", type=int, default=4, help="parallel lanes P (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: hw/build/<name>)")
    p.add_argument("--estimate", action="store_true",
                   help="print the cycle model's cycles per inference and memory bits")
    p.add_argument("--images", type=int, default=64,
                   help="golden inputs the estimate averages over (default: %(default)s)")
    p.set_defaults(func=_hw)


def _verify(args: argparse.Namespace) -> int:
    from qsnn.hw.verify import verify

    images = None if args.images == "all" else int(args.images)
    rep = verify(args.build, args.hw, images=images, waves=args.waves, seed=args.seed)
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
    p.add_argument("--waves", action="store_true", help="keep a waveform of the run")
    p.add_argument("--seed", type=int, default=1, help="back-pressure seed")
    p.set_defaults(func=_verify)


def _run_board(args: argparse.Namespace) -> int:
    from qsnn.hw.host import run_on_port

    images = None if args.images == "all" else int(args.images)
    run_on_port(args.port, args.build, images=images, baud=args.baud, timeout_s=args.timeout)
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


COMMANDS = (add_train, add_export, add_eval, add_hw, add_verify, add_bitstream, add_program,
            add_run)


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


if __name__ == "__main__":
    sys.exit(main())
