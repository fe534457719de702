"""The camera for ophyd-async: :class:`PvcamDetector`, a ``StandardDetector`` built
from trigger, acquire and data logic over the same acquisition core as the ophyd face
(:class:`~ophyd_pvcam.device.PrimeBSI`): one owner thread, ledger, writer, watchdog and
diagnosis.  Needs the ``async`` extra (``pip install ophyd-pvcam[async]``).  See
docs/decisions/0011-the-ophyd-async-face.md.
"""

from ._acquire import PvcamAcquireLogic, find_run
from ._data import PvcamDataLogic, PvcamDataProvider
from ._detector import PvcamDetector
from ._paths import FramesPathProvider
from ._plan import Plan
from ._status import LoopProgress
from ._trigger import PvcamTriggerLogic

__all__ = [
    "FramesPathProvider",
    "LoopProgress",
    "Plan",
    "PvcamAcquireLogic",
    "PvcamDataLogic",
    "PvcamDataProvider",
    "PvcamDetector",
    "PvcamTriggerLogic",
    "find_run",
]
