"""Emitting Qt signals from Python, safe from PySide6 6.12.0's reference leak.

PySide6 6.12.0's `SignalInstance.emit` returns Python's `True` without a reference of its
own, so every emit from Python code takes one reference away from `True`. The interpreter
aborts ("bool_dealloc: deallocating True or False") once about 10,000 are gone: in the app,
after a few hundred photos' progress reports (a medium photo sends about 40). 6.11.3 does
not leak; pyproject.toml excludes 6.12.0, and `emit` here also mends the count where a
leaking PySide is installed anyway (probed once, at import).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

PROBE_EMITS = 64


class _Probe(QObject):
    ping = Signal()


def emit_leaks_a_reference() -> bool:
    """Whether this PySide's emit() takes a reference from the object it returns.

    Emits an unconnected signal PROBE_EMITS times and watches True's reference count; half
    of them lost counts as a leak (other threads can move the count a little meanwhile,
    and mending a release that does not leak would only keep True alive for longer)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(PROBE_EMITS):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    if lost > 0:  # give back what the probe itself took
        for _ in range(lost):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    return lost >= PROBE_EMITS // 2


LEAKS = emit_leaks_a_reference()


def emit(signal: SignalInstance, *args: Any) -> None:
    """`signal.emit(*args)`, giving back the reference a leaking PySide takes."""
    result = signal.emit(*args)
    if LEAKS and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
