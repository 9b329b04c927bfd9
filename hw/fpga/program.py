"""``qsnn program``: load a bitstream into a board with openFPGALoader."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from qsnn.errors import QsnnError
from qsnn.hw.fpga.boards import get_board
from qsnn.hw.fpga.tools import first_error

LOADER = "openFPGALoader"
# what openFPGALoader prints when nothing is plugged in, e.g. "unable to open ftdi device: -3
# (device not found)", "Error: Failed to claim cable", "DFU init failed with: No DFU
# compatible device found"
_NO_BOARD = re.compile(r"device not found|no device found|unable to open ftdi|"
                       r"failed to claim cable|no dfu|dfu device not found|no cable|"
                       r"cable not found|fail to open|jtag init failed|no compatible|"
                       r"libusb_open|ftdi_usb_open", re.IGNORECASE)


def program(bitstream_file: str | Path, board: str, dry_run: bool = False) -> list[str]:
    """Load ``bitstream_file`` into ``board`` with openFPGALoader (``-b`` takes its own board
    names: iCEBreaker = ``ice40_generic``, which writes the SPI flash; ULX3S = ``ulx3s``,
    SRAM over JTAG; OrangeCrab = ``orangeCrab``, flash over its DFU bootloader: hold the
    button while plugging it in).

    Returns the command; with ``dry_run`` only builds it (openFPGALoader need not be
    installed). One-line errors: unknown board, missing bitstream, openFPGALoader not
    installed, no board found."""
    b = get_board(board)
    path = Path(bitstream_file)
    if not path.is_file():
        raise QsnnError(f"no bitstream {path}: run qsnn bitstream first")
    if path.suffix != b.bitstream_suffix:
        raise QsnnError(f"{path} is not a {b.name} bitstream (expected a "
                        f"{b.bitstream_suffix} file)")
    cmd = [LOADER, "-b", b.loader, str(path)]
    if dry_run:
        return cmd
    exe = shutil.which(LOADER)
    if exe is None:
        raise QsnnError(f"{LOADER} not found: apt-get install openfpgaloader")
    res = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        text = res.stdout + res.stderr
        if _NO_BOARD.search(text):
            raise QsnnError(f"no {b.name} board found (is it plugged in?)")
        raise QsnnError(f"{LOADER} failed (exit {res.returncode}): {first_error(text)}")
    return cmd
