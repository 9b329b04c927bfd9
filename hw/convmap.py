"""Address maths of the event-driven convolution engine (``hw/rtl/qsnn_conv_addr.v``).

A layer ``conv2d`` (stride 1, zero padding ``pad``) → [``sumpool`` Kp] → ``lif`` on an
input map (CI, H, W) is described to the engine by (docs/hardware.md, "Convolution
engine"):

* fused pooling: kernel KE = K + Kp − 1 at stride SE = Kp, DIV = 1, weights Wf
  (:func:`fused_kernel`, docs/spec.md §1a), engine positions HE × WE = HO × WO;
* pool as an address map: KE = K, SE = 1, DIV = Kp, 4-bit weights W, engine positions
  HE × WE = Hc × Wc (the conv map), each summed into pooled neuron (Ye >> log2 Kp, ...).

An event (c, y, x) with yp = y + pad updates the engine positions Ye with
0 ≤ yp − SE·Ye < KE, 0 ≤ Ye < HE (a contiguous range [lo, hi], :func:`axis_range`), the
same for x; for each (Ye, Xe) in row-major order and each channel group g < G = ⌈CO/P⌉,
one chunk per cycle::

    chunk = ((Ye >> log2 DIV)·WO + (Xe >> log2 DIV))·G + g     membrane / C word
    waddr = ((c·KE + (yp − SE·Ye))·KE + (xp − SE·Xe))·G + g    weight word (P lanes)

so an event costs nY·nX·G cycles (:func:`event_cycles`). θ and bias are word g. Membrane
word (Y·WO + X)·G + g holds neurons (g·P + p, Y, X), lane p in the low bits; weight word
((c·KE + u)·KE + v)·G + g holds Wx[g·P + p, c, u, v] (Wx = Wf fused, W otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsnn.errors import QsnnError

MAX_WB = 8  # widest weight word lane of qsnn_layer (its WB limit)


@dataclass(frozen=True)
class ConvGeom:
    """One conv layer as the engine sees it (input ``ci`` × ``h`` × ``w``, kernel ``k``,
    padding ``pad``, sum pool ``kp``, ``co`` output channels on ``lanes`` lanes)."""

    ci: int
    h: int
    w: int
    k: int
    pad: int
    kp: int
    co: int
    lanes: int
    fused: bool = True
    wb: int = 4  # bits of the IR's weights (fused words need wb + 2·log2 kp)

    @property
    def hc(self) -> int:
        """Conv output rows H + 2·pad − K + 1."""
        return self.h + 2 * self.pad - self.k + 1

    @property
    def wc(self) -> int:
        return self.w + 2 * self.pad - self.k + 1

    @property
    def ho(self) -> int:
        """LIF map rows Hc / Kp."""
        return self.hc // self.kp

    @property
    def wo(self) -> int:
        return self.wc // self.kp

    @property
    def ke(self) -> int:
        """Engine kernel: K + Kp − 1 fused, K otherwise."""
        return self.k + self.kp - 1 if self.fused else self.k

    @property
    def se(self) -> int:
        """Engine stride: Kp fused, 1 otherwise."""
        return self.kp if self.fused else 1

    @property
    def div(self) -> int:
        """Engine positions per pooled neuron along an axis: 1 fused, Kp otherwise."""
        return 1 if self.fused else self.kp

    @property
    def he(self) -> int:
        """Engine position rows: HO fused, Hc otherwise."""
        return self.ho * self.div

    @property
    def we(self) -> int:
        return self.wo * self.div

    @property
    def groups(self) -> int:
        """G = ⌈CO / P⌉ channel groups (chunks per position)."""
        return -(-self.co // self.lanes)

    @property
    def words(self) -> int:
        """Membrane (and C, spike-mask) words HO·WO·G."""
        return self.ho * self.wo * self.groups

    @property
    def w_words(self) -> int:
        """Weight words CI·KE²·G."""
        return self.ci * self.ke * self.ke * self.groups

    @property
    def weight_bits(self) -> int:
        """Bits per weight lane: wb + 2·log2 Kp fused, wb otherwise."""
        return self.wb + 2 * (self.kp.bit_length() - 1) if self.fused else self.wb

    def check(self, where: str = "conv layer") -> None:
        """One-line :class:`QsnnError` naming the first value past an engine limit."""
        for name, v in (("in channels", self.ci), ("height", self.h), ("width", self.w),
                        ("kernel", self.k), ("pool", self.kp), ("out channels", self.co),
                        ("lanes", self.lanes)):
            if v < 1:
                raise QsnnError(f"{where}: {name} {v} must be >= 1")
        if not 0 <= self.pad <= self.k - 1:
            raise QsnnError(f"{where}: padding {self.pad} outside 0..{self.k - 1} "
                            f"(kernel {self.k})")
        if self.hc < 1 or self.wc < 1:
            raise QsnnError(f"{where}: kernel {self.k} larger than the padded "
                            f"{self.h}x{self.w} map")
        if self.kp & (self.kp - 1):
            raise QsnnError(f"{where}: pool {self.kp} is not a power of two (engine limit: "
                            "address maths by shifts)")
        if self.hc % self.kp or self.wc % self.kp:
            raise QsnnError(f"{where}: pool {self.kp} does not divide the "
                            f"{self.hc}x{self.wc} conv map")
        if self.weight_bits > MAX_WB:
            raise QsnnError(f"{where}: fused pooling needs {self.weight_bits}-bit weights "
                            f"(limit {MAX_WB}); use the pool address map")


def axis_range(g: ConvGeom, v: int, n_e: int) -> tuple[int, int, int]:
    """(lo, hi, k0) along one axis for input coordinate ``v``: engine positions
    lo ≤ E ≤ hi with 0 ≤ v + pad − SE·E < KE, E < ``n_e``; k0 = v + pad − SE·lo (the
    kernel tap of the first position). ceil and floor by shifts (SE a power of two)."""
    vp = v + g.pad
    sh = g.se.bit_length() - 1
    hi = min(vp >> sh, n_e - 1)
    lo = 0 if vp < g.ke else (vp - g.ke + g.se) >> sh
    return lo, hi, vp - g.se * lo


def event_chunks(g: ConvGeom, c: int, y: int, x: int) -> list[tuple[int, int]]:
    """(membrane word, weight word) of every chunk an event (c, y, x) issues, in order."""
    ylo, yhi, _ = axis_range(g, y, g.he)
    xlo, xhi, _ = axis_range(g, x, g.we)
    dsh = g.div.bit_length() - 1
    out = []
    for ye in range(ylo, yhi + 1):
        for xe in range(xlo, xhi + 1):
            pos = (ye >> dsh) * g.wo + (xe >> dsh)
            tap = (c * g.ke + y + g.pad - g.se * ye) * g.ke + x + g.pad - g.se * xe
            out += [(pos * g.groups + gi, tap * g.groups + gi) for gi in range(g.groups)]
    return out


def event_cycles(g: ConvGeom, y: int, x: int) -> int:
    """Cycles one event (any channel) at (y, x) keeps the engine: nY·nX·G."""
    ylo, yhi, _ = axis_range(g, y, g.he)
    xlo, xhi, _ = axis_range(g, x, g.we)
    return (yhi - ylo + 1) * (xhi - xlo + 1) * g.groups


def fused_kernel(w: np.ndarray, kp: int) -> np.ndarray:
    """Wf[o, c, u, v] = Σ_{dy,dx<Kp} W[o, c, u−dy, v−dx] (docs/spec.md §1a), [O, C, K+Kp−1]²."""
    o, c, k, _ = w.shape
    out = np.zeros((o, c, k + kp - 1, k + kp - 1), np.int64)
    for dy in range(kp):
        for dx in range(kp):
            out[:, :, dy:dy + k, dx:dx + k] += w
    return out


def weight_rows(g: ConvGeom, w: np.ndarray) -> np.ndarray:
    """Weight memory [CI·KE²·G, P]: row ((c·KE + u)·KE + v)·G + gi, lane p =
    Wx[gi·P + p, c, u, v] (Wx = Wf fused, W otherwise; padded channels 0)."""
    wx = fused_kernel(w, g.kp) if g.fused else np.asarray(w, np.int64)
    pad = np.zeros((g.groups * g.lanes, g.ci, g.ke, g.ke), np.int64)
    pad[: g.co] = wx
    # [G, P, CI, KE, KE] -> [CI, KE, KE, G, P]
    return pad.reshape(g.groups, g.lanes, g.ci, g.ke, g.ke).transpose(2, 3, 4, 0, 1).reshape(
        -1, g.lanes)


def channel_rows(g: ConvGeom, values: np.ndarray, fill: int) -> np.ndarray:
    """Per-channel memory (θ, bias) [G, P]: lane p of word gi = values[gi·P + p]; padded
    channels ``fill``."""
    out = np.full(g.groups * g.lanes, fill, np.int64)
    out[: g.co] = values
    return out.reshape(g.groups, g.lanes)


def conv_mems(g: ConvGeom, w: np.ndarray, theta: np.ndarray, bias: np.ndarray | None,
              mb: int, prefix: str = "l0") -> dict[str, list[str]]:
    """``<prefix>_w.mem``, ``_theta.mem``, ``_bias.mem`` of a conv layer as ``$readmemh``
    hex words (weights ``g.weight_bits`` wide; padded channels: θ = max, bias 0)."""
    from qsnn.hw.generate import pack_words

    b = np.zeros(g.co, np.int64) if bias is None else bias
    return {
        f"{prefix}_w.mem": pack_words(weight_rows(g, w), g.weight_bits),
        f"{prefix}_theta.mem": pack_words(channel_rows(g, theta, (1 << (mb - 1)) - 1), mb),
        f"{prefix}_bias.mem": pack_words(channel_rows(g, b, 0), mb),
    }


def unpack_map(g: ConvGeom, lanes: np.ndarray) -> np.ndarray:
    """Membrane-word lane values [HO·WO·G·P] (word-major) → neurons [CO, HO, WO]; the
    inverse of the layout word (Y·WO + X)·G + gi, lane p = neuron (gi·P + p, Y, X)."""
    a = np.asarray(lanes).reshape(g.ho, g.wo, g.groups * g.lanes)
    return a.transpose(2, 0, 1)[: g.co]


def padded_lanes(g: ConvGeom, lanes: np.ndarray) -> np.ndarray:
    """The lanes of padded channels (≥ CO) of every membrane word (they must stay idle)."""
    a = np.asarray(lanes).reshape(g.ho * g.wo, g.groups * g.lanes)
    return a[:, g.co:]
