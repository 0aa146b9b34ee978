"""Writers of the synthetic raw files that need fixed bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: rsmiss-synth, Created by: rsmiss synth (synthetic)"


def write_mat(path: Path, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """A MATLAB v5 file with a fixed header text, so the same arrays give the same bytes."""
    from scipy.io import savemat

    with open(path, "wb") as fh:
        savemat(fh, arrays, do_compression=compress, oned_as="column")
    with open(path, "r+b") as fh:  # scipy stamps the current time into the 116-byte text
        fh.write(MAT_HEADER.ljust(116, b" "))
