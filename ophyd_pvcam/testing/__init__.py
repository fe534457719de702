"""A camera backend in pure Python for fast tests: the same Protocol as the pyvcam
backend, with faults on purpose, and it raises if two threads or a mid-stream
parameter call touch it.
"""

from ._fake import FAKE_CAPABILITIES, FakeBackend, fake_frame_number

__all__ = [
    "FAKE_CAPABILITIES",
    "FakeBackend",
    "fake_frame_number",
]
