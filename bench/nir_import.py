"""``qsnn import`` of other frameworks' NIR files, and the imported network on the RTL.

Two networks trained here on digits in seconds (the tests' makers,
``tests/test_nir_import.py``): a 64-48-10 snnTorch network exported with snnTorch's
``export_to_nir`` (LIF layers) and a 64-48-10 Norse network with an LI readout exported with
Norse's ``to_nir``. Each is imported (``import_nir``) at the given weight widths; the
figures are the import report's (agreement with the float NIR network, both accuracies,
on the 360 test images). With ``--verify`` the snnTorch import also goes through
``qsnn hw`` (P = 4) and ``qsnn verify`` on the whole test split (Verilator).

    .venv/bin/python bench/nir_import.py [--verify] [--out bench/out/nir_import]

Prints one JSON object; writes ``bench/out/nir_import.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nir
import torch

from qsnn.export.import_runner import import_nir
from qsnn.hw.generate import generate
from qsnn.hw.verify import verify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_nir_import import STEPS, norse_li_net, snntorch_digits_net  # noqa: E402

KEEP = ("agreement", "exact_count_agreement", "float_accuracy", "integer_accuracy", "images")


def imported(graph: nir.NIRGraph, out: Path, name: str, bits: int, dt: float) -> dict:
    """The import report's test figures (and an LI readout's threshold)."""
    out.mkdir(parents=True, exist_ok=True)
    nir.write(out / f"{name}.nir", graph)
    rep = import_nir(out / f"{name}.nir", out / f"{name}{bits}", bits=bits,
                     calibration="digits", time_steps=STEPS, dt=dt)
    fig = {k: rep["test"][k] for k in KEEP}
    if "readout_theta" in rep["layers"][-1]:
        fig["readout_theta"] = rep["layers"][-1]["readout_theta"]
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench/out/nir_import"))
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    snn, norse = snntorch_digits_net(), norse_li_net()
    res = {f"snntorch_lif_{b}bit": imported(snn, out, "snntorch", b, 1e-4) for b in (4, 8)}
    res |= {f"norse_li_readout_{b}bit": imported(norse, out, "norse", b, 1e-6) for b in (4, 8)}
    if args.verify:
        generate(out / "snntorch4", out / "hw_snntorch4", lanes=4)
        rep = verify(out / "snntorch4", out / "hw_snntorch4", images=None)
        res["snntorch_lif_4bit_rtl"] = {k: rep[k] for k in ("images", "mismatches",
                                                            "accuracy", "simulator")}
    print(json.dumps(res, indent=1))
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/nir_import.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
