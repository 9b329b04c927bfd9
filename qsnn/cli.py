"""The ``qsnn`` command: thin argument parsing over in-memory functions.

Each subcommand is ``add_<name>(subparsers)`` registering ``func(args) -> int``.
User errors (:class:`~qsnn.errors.QsnnError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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


def _not_yet(issue: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"qsnn {args.command}: not yet available (arrives with the {issue} issue)")
        return 0

    return run


def add_placeholders(sub: argparse._SubParsersAction) -> None:
    for name, issue in (("export", "[export]"),):
        p = sub.add_parser(name, help=f"not yet available ({issue})")
        p.add_argument("rest", nargs="*")
        p.set_defaults(func=_not_yet(issue))


COMMANDS = (add_train, add_placeholders)


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
