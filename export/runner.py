"""``qsnn export``: a trained run -> ``build/<name>/`` (IR, golden vectors, QONNX, NIR, report).

Steps (all in memory; the output folder is checked first, and the files are written to a
staging folder that replaces it only when everything succeeded, by the swap of
:mod:`qsnn.outdir`, so a failure or a kill leaves the old output or the new one, whole):

1. load ``runs/<name>/`` (config + ``best.pt``) and the test split;
2. lower the model through the handler registry and run the folding passes, checking
   each step on its own on the first CHECK_IMAGES test images (:mod:`.pass_checks`: the
   raw graph, run by the raw interpreter, against the trained model in eval mode; each
   pass's output against its input; spike trains and membranes of every LIF layer); the
   first failing check stops the export with one line naming its pass;
3. assign membrane widths (minimal from the worst-case analysis, or ``--membrane-bits``,
   refused if it can overflow) and validate the IR;
4. golden model on the whole test split: ``agreement`` with the trained model, accuracies;
5. write the IR, golden vectors, ``model.qonnx.onnx``, ``model.nir``, ``export_report.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsnn import atomic, config, outdir
from qsnn.config import RunConfig
from qsnn.data import DatasetSplits, Split
from qsnn.errors import QsnnError
from qsnn.export import golden, lower, pass_checks, serialize, widths
from qsnn.export.ir import LIF, Graph, InputEncoder, Node
from qsnn.train import checkpoint
from qsnn.train.loop import spike_counts
from qsnn.train.model import QSNN
from qsnn.train.runner import build_model, load_data

CHECK_IMAGES = 512
TRACE_IMAGES = 4


def load_run(run_dir: str | Path) -> tuple[RunConfig, QSNN, DatasetSplits]:
    """Config, trained model (best checkpoint, eval mode) and data of a run folder."""
    run_dir = Path(run_dir)
    outdir.recover(run_dir)
    if not run_dir.is_dir():
        raise QsnnError(f"run folder not found: {run_dir} (train one with qsnn train)")
    ckpt_path = run_dir / "best.pt"
    ckpt = checkpoint.load(ckpt_path)
    try:
        cfg = config.from_dict(ckpt["config"])
    except QsnnError as exc:
        raise QsnnError(f"checkpoint {ckpt_path} holds an invalid config: {exc}") from None
    cfg_file = run_dir / "config.yaml"
    if cfg_file.is_file():
        diffs = checkpoint.config_differences(config.load(cfg_file).to_dict(), cfg.to_dict())
        if diffs:
            raise QsnnError(f"{ckpt_path} is from another config than {cfg_file}: "
                            f"{', '.join(diffs[:5])} differ")
    data = load_data(cfg)
    model = build_model(cfg, data)
    checkpoint.load_model_state(model, ckpt, ckpt_path)
    bad = [k for k, v in model.state_dict().items()
           if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise QsnnError(f"{ckpt_path} holds non-finite values ({bad[0]}): the training "
                        "diverged; train again with a lower train.lr")
    model.eval()
    return cfg, model, data


def lower_and_fold(model: QSNN, cfg: RunConfig, data: DatasetSplits, x: torch.Tensor
                   ) -> tuple[InputEncoder, list[Node], list[dict[str, Any]]]:
    """Lower, run the passes, and check each step on the images ``x`` on its own (the raw
    graph against the trained model, each pass's output against its input; see
    :mod:`qsnn.export.pass_checks`). Returns the encoder, the integer nodes and the
    checks' report entries; the first failing check is a one-line error naming its pass."""
    enc, nodes = lower.lower_model(model, cfg.name, data.input_shape, cfg.data.rate_seed)
    graphs = pass_checks.pass_graphs(nodes)
    nodes = graphs[-1][1]
    checks = pass_checks.run_checks(model, enc, graphs, cfg.data.time_steps, x)
    _check(checks)
    return enc, lower.ir_nodes(nodes), [c.to_json() for c in checks]


def _check(checks: list[pass_checks.PassCheck]) -> None:
    """Raise the first failing check (in pass order) as a one-line error."""
    for check in checks:
        if not check.equal:
            raise QsnnError(check.message())


def assign_widths(enc: InputEncoder, nodes: list, name: str, steps: int,
                  membrane_bits: int | None, metadata: dict[str, Any]) -> Graph:
    """A validated graph whose LIFs have the minimal (or the requested) membrane width."""
    wide = Graph(name, steps, enc, tuple(nodes), metadata)
    need = {w.name: w.membrane_bits for w in widths.analyze(wide)}
    out = []
    for n in nodes:
        if isinstance(n, LIF):
            bits = need[n.name] if membrane_bits is None else membrane_bits
            if bits < need[n.name]:
                raise QsnnError(f"--membrane-bits {bits} can overflow layer '{n.name}' "
                                f"(needs {need[n.name]} bits)")
            n = dataclasses.replace(n, membrane_bits=bits)
        out.append(n)
    return Graph(name, steps, enc, tuple(out), metadata)


def golden_vectors(graph: Graph, test: Split, count: int | None) -> dict[str, np.ndarray]:
    """Inputs, labels, expected counts/predictions, and traces of the first few inputs."""
    n = len(test.y) if count is None else min(count, len(test.y))
    x = test.x[:n]
    res = golden.run_batched(graph, x)
    vec = {"inputs": x.numpy(), "labels": test.y[:n].numpy(),
           "counts": res.counts.numpy().astype(np.int32),
           "predictions": res.predictions.numpy().astype(np.int32)}
    traced = golden.run(graph, x[:TRACE_IMAGES], record=True)
    assert traced.spikes is not None and traced.membranes is not None  # record=True
    for lif, spk, mem in zip(graph.lifs(), traced.spikes, traced.membranes, strict=True):
        vec[f"trace.{lif.name}.spikes"] = spk.numpy()
        vec[f"trace.{lif.name}.membranes"] = mem.numpy().astype(np.int32)
    return vec


def write_golden(folder: Path, vec: dict[str, np.ndarray]) -> None:
    """``golden/vectors.npz`` (deterministic) plus a small JSON index."""
    folder.mkdir(parents=True, exist_ok=True)
    data = serialize.npz_bytes(vec)
    atomic.atomic_write(folder / "vectors.npz", lambda f: f.write(data))
    index = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sorted(vec.items())}
    atomic.write_json(folder / "index.json", {"images": int(len(vec["labels"])),
                                              "traced_images": TRACE_IMAGES, "arrays": index})


def export(run_dir: str | Path, out: str | Path, *, vectors: int | None = 64,
           membrane_bits: int | None = None, qonnx: bool = True) -> dict[str, Any]:
    """Export a run; returns the contents of ``export_report.json``."""
    out = Path(out)
    outdir.check(out, "export", inputs=[run_dir])   # before any work: never lose a folder
    cfg, model, data = load_run(run_dir)
    test = data.test
    torch_counts = spike_counts(model, test, cfg.train.eval_batch_size, torch.device("cpu"))
    n_check = min(CHECK_IMAGES, len(test.y))
    enc, nodes, checks = lower_and_fold(model, cfg, data, test.x[:n_check])
    meta = {"dataset": cfg.data.dataset, "precision": cfg.model.precision,
            "classes": data.num_classes}
    graph = assign_widths(enc, nodes, cfg.name, cfg.data.time_steps, membrane_bits, meta)
    result = golden.run_batched(graph, test.x)
    labels = test.y
    agree = (result.counts == torch_counts).all(1)
    report = build_report(graph, checks, result, torch_counts, labels, agree)
    with outdir.Output(out, "export", inputs=[run_dir]) as staging:
        serialize.save(graph, staging)
        write_golden(staging / "golden", golden_vectors(graph, test, vectors))
        from qsnn.export.nir_export import write_nir

        write_nir(graph, staging / "model.nir")
        if qonnx:
            report["qonnx"] = _export_qonnx(model, staging / "model.qonnx.onnx", test)
        atomic.write_json(staging / "export_report.json", report)
    return report


def _export_qonnx(model: QSNN, path: Path, test: Split) -> dict[str, Any]:
    from qsnn.export import qonnx_finn
    from qsnn.export.qonnx_export import export_step_qonnx, verify_step_qonnx

    sample = test.x[:8]
    export_step_qonnx(model, path, sample)
    report = verify_step_qonnx(path, model, sample)
    report["onnxruntime_qcdq"] = qonnx_finn.verify_qcdq(path, model, sample)
    report["inference_cost"] = qonnx_finn.inference_cost(path)
    return report


def build_report(graph: Graph, checks: list, result: golden.GoldenResult,
                 torch_counts: torch.Tensor, labels: torch.Tensor,
                 agree: torch.Tensor) -> dict[str, Any]:
    """``export_report.json``: versions, accuracies, agreement, widths, pass checks."""
    from qsnn.export.ir import IR_VERSION

    layer_widths = widths.analyze(graph)
    torch_pred = torch.argmax(torch_counts, 1)
    return {
        "ir_version": IR_VERSION, "name": graph.name, "test_images": int(len(labels)),
        "golden_accuracy": float((result.predictions == labels).float().mean()),
        "torch_accuracy": float((torch_pred == labels).float().mean()),
        "agreement": float(agree.float().mean()),
        "disagreeing_images": int((~agree).sum()),
        "weight_bits": sorted({n.weight_bits for n in graph.nodes if hasattr(n, "weight_bits")}),
        "membrane_bits": {w.name: w.membrane_bits for w in layer_widths},
        "current_bits": {w.name: w.current_bits for w in layer_widths},
        "widths": [dataclasses.asdict(w) for w in layer_widths],
        "time_steps": graph.time_steps, "encoding": graph.input.encoding,
        "passes": checks,
    }


def evaluate(build_dir: str | Path, data_dir: str | None = None) -> dict[str, Any]:
    """Golden-model accuracy of an exported IR on its dataset's test split."""
    graph = serialize.load(build_dir)
    from qsnn.data import load_dataset

    name = graph.metadata.get("dataset")
    if not name:
        raise QsnnError(f"IR in {build_dir} does not name its dataset (metadata.dataset)")
    frames = graph.time_steps if graph.input.encoding == "events" else 20
    data = load_dataset(name, data_dir, time_steps=frames)
    res = golden.run_batched(graph, data.test.x)
    acc = float((res.predictions == data.test.y).float().mean())
    return {"dataset": name, "test_images": int(len(data.test.y)), "golden_accuracy": acc}
