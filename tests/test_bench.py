"""The training-speed benchmark runs (quick mode) and writes its JSON record."""

from __future__ import annotations

import json
import subprocess
import sys


def test_train_speed_quick(root, tmp_path) -> None:
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(root / "bench/train_speed.py"), "--quick", "--no-profile",
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    rec = json.loads(out.read_text())
    for key in ("baseline_s_per_iter", "qsnn_s_per_iter", "speedup"):
        assert rec[key] > 0
    assert rec["eval_check"]["abs_diff_same_quantizer"] == 0.0
    assert rec["eval_check"]["spike_mismatches_same_quantizer"] == 0
