"""A generated design (``hw/build/<name>/``) as one typed object: the only reader of
``params.json``.

:class:`Design` holds what ``qsnn hw`` recorded (layers, lanes, IR hash, sizes) and the
sizes and file names derived from it; ``qsnn bitstream``, ``qsnn verify``, ``qsnn run``
and the cycle model use it instead of the raw JSON. Every contract quantity has one
definition here:

    G (channel groups)    = ceil(N / P)
    K (chunks)            = HO * WO * G                   (fully connected: HO = WO = 1)
    weight words          = N_IN * KE^2 * G               (LayerParams.w_words; fully
                                                           connected: KE = 1, so N_IN * K)
    weight memory bits    = weight words * P * WB         (LayerParams.w_bits)
    input bytes per image = prod(C, H, W) (* T for event input)      (input_bytes)
    readout counter bits  = bits(T);  m_counts bits per class = max(16, bits(T))
    design id (info_id)   = the first 4 bytes of SHA-256(model.json + weights.npz)

A design is stale when the IR's hash differs from the one recorded (:meth:`Design.check_fresh`).
A hand-edited or foreign ``params.json`` (a key missing or of another type, a name that
may not reach a file name, a size below 1) is one line (:func:`params_problem`), never a
traceback in the command that reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsnn.errors import QsnnError
from qsnn.export.ir import Encoding, Graph
from qsnn.hw.convmap import ConvGeom
from qsnn.hw.cores import BOARD_FILES, UART_FILES

PARAMS_FILE = "params.json"
TOP_FILE = "qsnn_top.v"
WEIGHTS_FILE = "weights.bin"
COUNT_BITS = 16   # bits per class on qsnn_top's m_counts (at least; see m_count_bits)


@dataclass(frozen=True)
class LayerParams:
    """Verilog parameters of one ``qsnn_layer`` instance and its spike buffer.

    A fully connected layer keeps the geometry defaults (``h_in`` = ``w_in`` = ``kernel``
    = ``pool`` = 1, ``pad`` = 0); a convolutional one has ``n_in`` input channels on an
    ``h_in`` × ``w_in`` map, ``n`` output channels, and ``wb`` is the width of a weight
    lane in memory (the IR's bits + 2·log2 ``pool`` when the pool is ``fused``)."""

    index: int
    n_in: int
    n: int
    lanes: int
    wb: int
    mb: int
    vb: int
    leak_mult: int
    leak_param: int
    frac_bits: int
    reset_mode: int
    w_runtime: int = 0   # 1: weights in RAM loaded at run time (weights.bin), 0: ROM
    h_in: int = 1        # input map rows (RTL H_IN)
    w_in: int = 1        # input map columns (W_IN)
    kernel: int = 1      # conv kernel K (KS)
    pad: int = 0         # zero padding (PAD)
    pool: int = 1        # sum pool Kp (KP)
    fused: int = 1       # 1: pool fused into the kernel, 0: pool as an address map (FUSED)
    c_ram: int = 1       # 1: a C word per chunk (direct-input first layer), 0: C = bias (C_RAM)
    coord: int = 0       # its spike buffer emits {c, y, x} (1: a conv layer follows) (COORD)
    m_spram: int = 0     # 1: V (and C) in one single-port qsnn_mem_spram (M_SPRAM)

    @property
    def conv(self) -> bool:
        """A convolutional layer (the RTL's CONV: any geometry parameter past 1)."""
        return (self.h_in, self.w_in, self.kernel, self.pool) != (1, 1, 1, 1)

    def geom(self) -> ConvGeom:
        """The layer as the conv engine sees it (a fully connected layer: the degenerate
        1 × 1 map, kernel 1)."""
        ir_wb = self.wb - (2 * (self.pool.bit_length() - 1) if self.fused else 0)
        return ConvGeom(self.n_in, self.h_in, self.w_in, self.kernel, self.pad, self.pool,
                        self.n, self.lanes, bool(self.fused), ir_wb)

    @property
    def ho(self) -> int:
        """LIF map rows HO = (H_IN + 2·PAD − K + 1) / Kp (1 when fully connected)."""
        return self.geom().ho

    @property
    def wo(self) -> int:
        return self.geom().wo

    @property
    def groups(self) -> int:
        """G = ceil(N / P) channel groups."""
        return -(-self.n // self.lanes)

    @property
    def chunks(self) -> int:
        """K = HO * WO * G membrane words (fully connected: ceil(N / P))."""
        return self.ho * self.wo * self.groups

    @property
    def neurons(self) -> int:
        """LIF neurons N * HO * WO."""
        return self.n * self.ho * self.wo

    @property
    def w_words(self) -> int:
        """Words of the weight memory: N_IN * KE^2 * G (fully connected: N_IN * K)."""
        return self.geom().w_words

    @property
    def in_index_bits(self) -> int:
        """Bits of the event index: the packed {c, y, x} (a size-1 dimension has none;
        fully connected: the input index)."""
        return max(1, _field_bits(self.n_in) + _field_bits(self.h_in) + _field_bits(self.w_in))

    @property
    def out_index_bits(self) -> int:
        """Bits of the spike buffer's event index: packed {c, Y, X} (``coord``) or the
        flat index c·HO·WO + Y·WO + X."""
        if self.coord:
            return max(1, _field_bits(self.n) + _field_bits(self.ho) + _field_bits(self.wo))
        return max(1, _field_bits(self.neurons))

    @property
    def w_word_bytes(self) -> int:
        """Bytes per weight word in weights.bin (P * WB bits, rounded up)."""
        return -(-self.lanes * self.wb // 8)

    @property
    def w_bits(self) -> int:
        """Bits of the weight memory (``w_words`` words of P * WB bits; padded neurons
        too)."""
        return self.w_words * self.lanes * self.wb

    @property
    def chunk_cycles(self) -> int:
        """Cycles per chunk of every pass and event: 2 with the membranes in SPRAM
        (``m_spram``: read, then write, on one port), else 1."""
        return 2 if self.m_spram else 1

    @property
    def spram_word_bits(self) -> int:
        """Bits of a ``qsnn_mem_spram`` word (``m_spram``): V, and C when ``c_ram``, each
        padded to whole nibbles (the SPRAM's write mask)."""
        return 4 * -(-self.lanes * self.mb // 4) * (2 if self.c_ram else 1)

    def mem_files(self) -> tuple[str, str, str]:
        """The ``$readmemh`` files of this layer: weights, thresholds, biases."""
        return (f"l{self.index}_w.mem", f"l{self.index}_theta.mem", f"l{self.index}_bias.mem")


def _field_bits(n: int) -> int:
    """Bits of an index 0 .. n-1 in a packed coordinate: 0 for a size-1 dimension."""
    return (n - 1).bit_length() if n > 1 else 0


def weight_bytes(layers: tuple[LayerParams, ...] | list[LayerParams]) -> int:
    """Bytes of ``weights.bin``: the run-time layers' N_IN * K words of ceil(P WB / 8)
    bytes each (0 without run-time layers)."""
    return sum(p.w_words * p.w_word_bytes for p in layers if p.w_runtime)


def input_bytes(graph: Graph) -> int:
    """Bytes per image on the input stream (``params.json`` ``input_bytes``): the pixels,
    or for event input T frames of them."""
    n = math.prod(graph.input.shape)
    return n * (graph.time_steps if graph.input.encoding == Encoding.EVENTS else 1)


def counter_bits(time_steps: int) -> int:
    """Bits of a readout counter (``CW`` of qsnn_readout): it counts 0 .. T spikes, so
    CW = bits(T) (T = 65,536 needs 17)."""
    return max(1, time_steps.bit_length())


def m_count_bits(time_steps: int) -> int:
    """Bits per class on ``m_counts`` (``params.json`` ``count_bits``): 16, or the
    counters' width when T >= 65,536."""
    return max(COUNT_BITS, counter_bits(time_steps))


def design_id(ir_hash: str) -> int:
    """The 32-bit id a design reports on ``info_id``: the first 4 bytes of its IR hash."""
    return int(ir_hash[:8], 16)


def ir_sha256(build_dir: Path) -> str:
    """Hash of the IR files (model.json + weights.npz), recorded in params.json; its first
    4 bytes are the design id the hardware reports (``info_id``)."""
    build_dir = Path(build_dir)
    try:
        return hashlib.sha256((build_dir / "model.json").read_bytes()
                              + (build_dir / "weights.npz").read_bytes()).hexdigest()
    except OSError:
        raise QsnnError(f"no IR in {build_dir}: run qsnn export") from None


# params.json: the type of every scalar key (read as is: no conversion of "4" or 4.0)
TOP_TYPES: dict[str, type] = {
    "name": str, "ir_sha256": str, "lanes": int, "time_steps": int, "encoding": str,
    "pixel_max": int, "lfsr_seed": int, "classes": int, "count_bits": int,
    "input_bytes": int, "weight_bytes": int}
POSITIVE = ("lanes", "time_steps", "classes", "count_bits", "input_bytes")
LAYER_POSITIVE = ("n_in", "n", "lanes", "wb", "mb", "vb")
#: layer keys written only when not their default (designs without them stay as before)
LAYER_OPTIONAL = {"m_spram": 0}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def params_problem(params: Any) -> str | None:
    """What makes ``params`` not a ``params.json`` that ``qsnn hw`` wrote (a hand-edited or
    foreign file), or None: every key present and of its type, the name one that may
    reach file names, the hash a SHA-256, sizes positive, layers complete."""
    if not isinstance(params, dict):
        return "not a JSON object"
    needed = (*TOP_TYPES, "layers", "runtime_weights", "rtl")
    missing = [k for k in needed if k not in params]
    if missing:
        return f"no {missing[0]!r}"
    for key, typ in TOP_TYPES.items():
        if not (_is_int(params[key]) if typ is int else isinstance(params[key], typ)):
            return f"{key!r} is not {'an integer' if typ is int else 'a string'}"
    from qsnn.config import NAME

    if not NAME.match(params["name"]):
        return f"bad name {params['name']!r}"
    if not re.fullmatch(r"[0-9a-f]{64}", params["ir_sha256"]):
        return "'ir_sha256' is not a SHA-256"
    if params["encoding"] not in Encoding.values():
        return f"unknown encoding {params['encoding']!r}"
    bad = [k for k in POSITIVE if params[k] < 1]
    if bad:
        return f"{bad[0]!r} must be positive"
    return _lists_problem(params)


def _lists_problem(params: dict[str, Any]) -> str | None:
    layers, rtl = params["layers"], params["rtl"]
    if not isinstance(layers, list) or not layers:
        return "'layers' is not a list of layers"
    names = [f.name for f in dataclasses.fields(LayerParams) if f.name not in LAYER_OPTIONAL]
    for i, layer in enumerate(layers):
        if isinstance(layer, dict) and not all(
                _is_int(layer.get(k, v)) for k, v in LAYER_OPTIONAL.items()):
            return f"layer {i} has a non-integer {', '.join(LAYER_OPTIONAL)}"

        if not isinstance(layer, dict) or not all(_is_int(layer.get(k)) for k in names) \
                or any(layer[k] < 1 for k in LAYER_POSITIVE):
            return f"layer {i} lacks one of {', '.join(names)} or has a size below 1"
    if not isinstance(params["runtime_weights"], list) or not all(
            _is_int(i) and 0 <= i < len(layers) for i in params["runtime_weights"]):
        return "'runtime_weights' is not a list of layer indices"
    if not isinstance(rtl, list) or not rtl or not all(
            isinstance(f, str) and f and "/" not in f for f in rtl):
        return "'rtl' is not a list of file names"
    return None


@dataclass(frozen=True)
class Design:
    """A generated design: ``params.json`` typed, plus derived sizes and file names."""

    folder: Path
    name: str
    ir_sha256: str
    lanes: int
    time_steps: int
    encoding: str
    pixel_max: int
    lfsr_seed: int
    classes: int
    count_bits: int
    input_bytes: int
    layers: tuple[LayerParams, ...]
    runtime_weights: tuple[int, ...]
    weight_bytes: int
    rtl: tuple[str, ...]

    # -- params.json ------------------------------------------------------------------
    def to_params(self) -> dict[str, Any]:
        """The content of ``params.json``."""
        return {
            "name": self.name, "ir_sha256": self.ir_sha256, "lanes": self.lanes,
            "time_steps": self.time_steps, "encoding": str(self.encoding),
            "pixel_max": self.pixel_max, "lfsr_seed": self.lfsr_seed,
            "classes": self.classes, "count_bits": self.count_bits,
            "input_bytes": self.input_bytes,
            "layers": [{k: v for k, v in p.__dict__.items()
                        if k not in LAYER_OPTIONAL or v != LAYER_OPTIONAL[k]}
                       | {"chunks": p.chunks} for p in self.layers],
            "runtime_weights": list(self.runtime_weights),
            "weight_bytes": self.weight_bytes,
            "rtl": list(self.rtl),
        }

    def params_json(self) -> str:
        """``params.json`` as written (sorted keys, deterministic)."""
        return json.dumps(self.to_params(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_params(cls, folder: str | Path, params: dict[str, Any]) -> Design:
        """A design from the content of its ``params.json`` (one-line error if malformed:
        :func:`params_problem`)."""
        folder = Path(folder)
        problem = params_problem(params)
        if problem:
            raise QsnnError(f"{folder / PARAMS_FILE} is corrupt ({problem}): regenerate it "
                            "with qsnn hw")
        names = [f.name for f in dataclasses.fields(LayerParams)]
        layers = tuple(LayerParams(**{k: layer.get(k, LAYER_OPTIONAL.get(k)) for k in names})
                       for layer in params["layers"])
        return cls(folder=folder, **{k: params[k] for k in TOP_TYPES},
                   layers=layers, runtime_weights=tuple(params["runtime_weights"]),
                   rtl=tuple(params["rtl"]))

    @classmethod
    def load(cls, folder: str | Path, build_dir: str | Path | None = None) -> Design:
        """The design in ``folder``; a one-line error when there is none (saying what to
        run, with ``build_dir`` if known) or its ``params.json`` is corrupt."""
        from qsnn.outdir import recover

        folder = Path(folder)
        recover(folder)     # a swap that a killed qsnn hw left half-done
        pfile = folder / PARAMS_FILE
        if not pfile.is_file():
            src = build_dir if build_dir is not None else "<build dir>"
            raise QsnnError(f"no generated design in {folder}: run qsnn hw {src} "
                            f"--out {folder}")
        try:
            params = json.loads(pfile.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise QsnnError(f"{pfile} is corrupt ({type(exc).__name__}): regenerate it "
                            "with qsnn hw") from None
        if not isinstance(params, dict):
            raise QsnnError(f"{pfile} is corrupt (not a JSON object): regenerate it with "
                            "qsnn hw")
        return cls.from_params(folder, params)

    # -- derived ----------------------------------------------------------------------
    @property
    def id(self) -> int:
        """The 32-bit design id on ``info_id``."""
        return design_id(self.ir_sha256)

    def weight_bits(self, runtime: bool | None = None) -> int:
        """Bits of the weight memories: all, or only the run-time-loaded (``True``) or
        ROM (``False``) ones."""
        return sum(p.w_bits for p in self.layers
                   if runtime is None or bool(p.w_runtime) == runtime)

    @property
    def mem_files(self) -> tuple[str, ...]:
        """Every ``$readmemh`` file, layer by layer."""
        return tuple(f for p in self.layers for f in p.mem_files())

    @property
    def uart_sources(self) -> tuple[str, ...]:
        """Verilog of ``qsnn_uart_top`` (the design's cores, its top, the UART wrapper)."""
        return self.rtl + UART_FILES

    @property
    def board_sources(self) -> tuple[str, ...]:
        """Verilog of a board: :attr:`uart_sources` and the board wrapper core."""
        return self.uart_sources + BOARD_FILES

    def check_files(self, names: tuple[str, ...]) -> None:
        """One-line error naming the first of ``names`` missing from the folder."""
        needed = names + ((WEIGHTS_FILE,) if self.runtime_weights else ())
        missing = [n for n in needed if not (self.folder / n).is_file()]
        if missing:
            raise QsnnError(f"{self.folder} is incomplete ({missing[0]} missing): regenerate "
                            "it with qsnn hw")

    def check_fresh(self, build_dir: str | Path) -> None:
        """One-line error when the IR in ``build_dir`` changed since generation."""
        if self.ir_sha256 != ir_sha256(Path(build_dir)):
            raise QsnnError(f"{self.folder} is stale (the IR in {build_dir} changed since it "
                            f"was generated): run qsnn hw {build_dir} --lanes {self.lanes}")
