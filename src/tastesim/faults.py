"""Crash points: named places where the crash-anywhere tests kill a run, as SQLite's crash tests do.

``TASTESIM_CRASH_AT=NAME:N`` makes the N-th call of ``crash_point(NAME)`` in a process kill that process's
whole process group with SIGKILL: the run, its memory writer processes and any server it started, as a
power cut would. Start such a process in a session of its own. Unset (always, outside the tests) a crash
point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["CRASH_ENV", "crash_point"]

CRASH_ENV = "TASTESIM_CRASH_AT"

_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Kill this process group here if ``TASTESIM_CRASH_AT`` is ``name:N`` and this is the N-th call."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != name or not count.isdigit():
        return
    _hits[name] += 1
    if _hits[name] == int(count):
        os.killpg(os.getpgid(0), signal.SIGKILL)
