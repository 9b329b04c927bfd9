"""The hand-written cores of ``hw/rtl/``: where they are, which files a generated design
copies, and their constants read from the Verilog itself.

Python never copies an RTL constant: a bench or tool that needs, say, ``qsnn_layer``'s
``S_UPDATE`` state code reads it with :func:`localparam` from the core's source.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from qsnn.errors import QsnnError

RTL_DIR = Path(__file__).resolve().parent / "rtl"
#: the cores of ``qsnn_top`` (copied into every design, listed in ``filelist.f``)
RTL_FILES = ("qsnn_lif_lane.v", "qsnn_layer.v", "qsnn_spikebuf.v", "qsnn_lfsr.v",
             "qsnn_encoder.v", "qsnn_readout.v", "qsnn_sequencer.v", "qsnn_wload.v",
             "qsnn_cycle_counter.v", "qsnn_top_io.v")
#: the conv engine's address generator (copied into designs with a conv layer only)
CONV_FILES = ("qsnn_conv_addr.v",)
#: the membrane SPRAM (copied into designs with a layer's membranes in SPRAM only)
SPRAM_FILES = ("qsnn_mem_spram.v",)
#: the UART command wrapper ``qsnn_uart_top`` (``filelist_uart.f``)
UART_FILES = ("qsnn_uart_rx.v", "qsnn_uart_tx.v", "qsnn_uart_top.v")
#: the board wrapper core of ``qsnn bitstream`` (power-on reset, LEDs)
BOARD_FILES = ("qsnn_board_io.v",)


def source(name: str) -> Path:
    """Path of the core file ``name`` in ``hw/rtl/``."""
    return RTL_DIR / name


@cache
def localparams(name: str) -> dict[str, int]:
    """Every integer ``localparam`` of the core file ``name``: decimal (``4``) or sized
    (``3'd4``, ``8'h3f``, ``2'b10``) literals; other expressions are skipped."""
    text = re.sub(r"//[^\n]*", "", source(name).read_text())
    out: dict[str, int] = {}
    for decl in re.findall(r"\blocalparam\b([^;]*);", text):
        body = re.sub(r"^\s*(?:(?:integer|signed)\b\s*|\[[^\]]*\]\s*)*", "", decl)
        for key, value in re.findall(r"(\w+)\s*=\s*([^,]+)", body):
            m = re.fullmatch(r"\s*(?:\d+\s*)?'\s*([dhb])\s*([0-9a-fA-F_]+)\s*|\s*(\d+)\s*",
                             value)
            if m:
                base = {"d": 10, "h": 16, "b": 2}[m[1] or "d"]
                out[key] = int((m[2] or m[3]).replace("_", ""), base)
    return out


def localparam(name: str, key: str) -> int:
    """The integer ``localparam key`` of the core file ``name`` (one-line error if absent)."""
    try:
        return localparams(name)[key]
    except KeyError:
        raise QsnnError(f"{source(name)} has no integer localparam {key}") from None
