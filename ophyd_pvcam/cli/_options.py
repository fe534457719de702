"""Option values more than one command takes: whole numbers, seconds, positive
numbers, contrast percentiles.

Each parser refuses a bad value with a sentence saying what to give instead; argparse
prints it as ``argument --NAME: ...`` and the command exits with 2 before doing
anything.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

DEFAULT_CONTRAST = (1.0, 99.5)  # percentiles drawn black and white (as the live view)


def integer(least: int) -> Callable[[str], int]:
    """A whole number of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: give {least} or more")
        return value

    return parse


def seconds(text: str) -> float:
    """A duration above 0 (not infinite, not NaN)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    """A number of ``kind`` (int or float) above 0."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a positive value")
        return value

    return parse


def contrast(text: str) -> tuple[float, float]:
    """LOW,HIGH: the percentiles of a frame's pixels drawn black and white."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two percentiles LOW,HIGH, e.g. 1,99.5"
        ) from None
    if not (0 <= low < high <= 100):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LOW < HIGH <= 100")
    return low, high
