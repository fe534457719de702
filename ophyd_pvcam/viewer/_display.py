"""A display to draw on: whether a window can open at all, and who runs its event loop.

A live window needs a display and an interactive matplotlib backend; without one the
user gets one line saying why and what to do, not a traceback from Tk.  In IPython
the prompt runs the windows' event loop (as ``%matplotlib`` does), so a window lives
on while the prompt waits; in a script the window blocks until it is closed.
"""

from __future__ import annotations

import os
import sys
from typing import Any


class DisplayError(RuntimeError):
    """No display to open a window on; the message says why and what to do."""


def require_display() -> None:
    """Make matplotlib draw in a window (TkAgg unless an interactive backend is already
    chosen), or raise :class:`DisplayError` saying why it cannot."""
    import matplotlib

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise DisplayError(
            "no display to open a window on (DISPLAY is not set): run it on the "
            "workstation's desktop, or log in with 'ssh -X'"
        )
    backend = matplotlib.get_backend().lower()
    interactive = backend in {b.lower() for b in _interactive_backends()}
    if not interactive:
        try:
            import tkinter

            root = tkinter.Tk()  # can we reach the display at all?
            root.destroy()
        except Exception as error:  # tkinter.TclError, ImportError: one line either way
            raise DisplayError(
                f"cannot open a window on display {os.environ.get('DISPLAY', '?')}: "
                f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
            ) from None
        import matplotlib.pyplot as plt

        plt.switch_backend("TkAgg")


def _interactive_backends() -> list[str]:
    from matplotlib.backends.registry import BackendFilter, backend_registry

    return backend_registry.list_builtin(BackendFilter.INTERACTIVE)


def _ipython() -> Any:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "enable_matplotlib") else None


def show_from_the_prompt() -> bool:
    """In IPython, let the prompt run the window's event loop (like ``%matplotlib``):
    True if windows then live on while the prompt waits, False if they must block."""
    shell = _ipython()
    if shell is None:
        return False
    if not getattr(shell, "active_eventloop", None):
        import matplotlib

        gui = {"tkagg": "tk", "qtagg": "qt", "macosx": "osx"}.get(
            matplotlib.get_backend().lower(), "tk"
        )
        shell.enable_matplotlib(gui)
    return True
