"""Reading the frame number the simulated camera stamps into every image."""

from __future__ import annotations

import numpy as np


def frame_number(image: np.ndarray) -> int:
    """The camera frame number (FrameNr, from 1) stamped in the first four
    pixels of a simulated frame, one byte per pixel, least significant first."""
    flat = np.asarray(image).reshape(-1)
    if flat.size < 4:
        raise ValueError(f"a frame of {flat.size} pixels is too small to carry a frame number")
    return int(sum(int(flat[k]) << (8 * k) for k in range(4)))
