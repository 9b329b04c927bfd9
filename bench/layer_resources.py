"""Resources of one ``qsnn_layer`` instance: ``synth_ice40 -spram`` or ``synth_ecp5``.

    python bench/layer_resources.py ice40 '{"N_IN": 784, "N": 128, "P": 4, "MB": 24,
                                            "VB": 8, "W_RUNTIME": 1}'
    python bench/layer_resources.py ecp5 '{"N_IN": 16, "H_IN": 12, "W_IN": 12, "KS": 5,
        "KP": 2, "N": 64, "P": 16, "WB": 6, "MB": 18, "C_RAM": 0}' [--rtl DIR]

Memory files are random words of the sizes the parameters imply (N_IN·KE²·G weight
words, G θ/bias words; the fully connected layer is KE = 1). Prints one JSON line of cell
counts (iCE40: SB_LUT4, SB_CARRY, FF, RAMs; ECP5: LUT4, FF, CCU2C, DP16KD, MULT18X18D, ...).
Used for docs/hardware.md "Convolution engine" (``--rtl`` compares another checkout).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from qsnn.hw import simlib

ROOT = Path(__file__).resolve().parents[1]
KEEP = ("SB_LUT4", "SB_CARRY", "SB_RAM40_4K", "SB_SPRAM256KA", "LUT4", "TRELLIS_FF", "CCU2C",
        "DP16KD", "TRELLIS_DPR16X4", "MULT18X18D", "PFUMX", "L6MUX21")


def mem_files(hp: dict, folder: Path) -> dict[str, str]:
    """Random $readmemh files for the parameters (as Verilog string parameters)."""
    p, g = hp["P"], -(-hp["N"] // hp["P"])
    ke = hp.get("KS", 1) + (hp.get("KP", 1) - 1 if hp.get("FUSED", 1) else 0)
    rs = np.random.default_rng(0)
    out = {}
    for key, words, bits in (("W_FILE", hp["N_IN"] * ke * ke * g, hp.get("WB", 4)),
                             ("TH_FILE", g, hp["MB"]), ("B_FILE", g, hp["MB"])):
        lines = [f"{int(v):x}" for v in rs.integers(0, 1 << min(p * bits, 62), words)]
        path = folder / f"res_{key}.mem"
        path.write_text("\n".join(lines) + "\n")
        out[key] = f'"{path.relative_to(ROOT)}"'
    return out


def cells(stat: str) -> dict[str, int]:
    """Cell counts of a Yosys ``stat`` report (flip-flops summed as FF)."""
    out: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\d+)\s+(\S+)$", stat, re.M):
        name, n = m.group(2), int(m.group(1))
        if name.startswith("SB_DFF") or name == "TRELLIS_FF":
            out["FF"] = out.get("FF", 0) + n
        elif name in KEEP:
            out[name] = out.get(name, 0) + n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=("ice40", "ecp5"))
    ap.add_argument("params", help="qsnn_layer parameters as JSON")
    ap.add_argument("--rtl", type=Path, default=ROOT / "hw" / "rtl")
    args = ap.parse_args()
    hp = json.loads(args.params)
    work = ROOT / "sim_build" / "gen"
    work.mkdir(parents=True, exist_ok=True)
    files = [args.rtl / f for f in ("qsnn_layer.v", "qsnn_lif_lane.v", "qsnn_conv_addr.v")]
    reads = "; ".join(f"read_verilog -defer {f}" for f in files if f.is_file())
    chparam = " ".join(f"-set {k} {v}" for k, v in {**hp, **mem_files(hp, work)}.items())
    synth = "synth_ice40 -spram" if args.family == "ice40" else "synth_ecp5"
    stat = work / f"res_stat_{args.family}.txt"
    res = simlib.yosys(f"{reads}; chparam {chparam} qsnn_layer; hierarchy -top qsnn_layer; "
                       f"{synth} -top qsnn_layer; tee -o {stat.relative_to(ROOT)} stat")
    if res.returncode:
        raise SystemExit(res.stdout[-2000:] + res.stderr[-2000:])
    print(json.dumps(cells(stat.read_text())))


if __name__ == "__main__":
    main()
