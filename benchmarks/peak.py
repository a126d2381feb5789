"""Run a module (``-m name``) or script as ``__main__``; at exit, write this process's peak RSS.

    CARDLINK_BENCH_PEAK_FILE=peak.txt python peak.py -m cardlink.database.cli export ...

``ru_maxrss`` of a child is useless here: Linux carries the parent's high-water mark
over ``fork``/``exec``, so every child of the (large) benchmark process would report
at least the parent's size. ``VmHWM`` of the process itself has no such carry-over.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys


def peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM) in kB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _report() -> None:
    target = os.environ.get("CARDLINK_BENCH_PEAK_FILE")
    if target:
        with open(target, "w", encoding="ascii") as out:
            out.write(str(peak_rss_kb()))


if __name__ == "__main__":
    atexit.register(_report)
    if sys.argv[1] == "-m":
        module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script, sys.argv = sys.argv[1], sys.argv[1:]
        runpy.run_path(script, run_name="__main__")
