"""A probe's or a check's report kept on disk as it grows.

Both take many minutes and can be interrupted (Ctrl-C, a crash, a camera that hangs);
rewriting the JSON file after each finding leaves what was found so far.  Each write
replaces the file whole, so a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def report_writer(path: str | os.PathLike) -> Callable[[dict[str, Any]], None]:
    """A function that writes the report it is given to ``path`` as JSON, replacing
    the file at once (written beside it first, then renamed over it)."""
    target = Path(path)

    def save(report: dict[str, Any]) -> None:
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(report, indent=1, default=str))
        partial.replace(target)

    return save
