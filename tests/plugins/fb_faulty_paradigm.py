"""Faulty implementations of sma that exist only in the tests (loaded through
FACTORBENCH_PLUGINS): each misbehaves only above LARGE elements, beyond the
correctness check's inputs, except the one that always raises."""

import ctypes
import os
import subprocess
import sys
import time
from multiprocessing.shared_memory import SharedMemory

from factorbench.kernels import kernel
from factorbench.registry import Paradigm

LARGE = 200_000
CHILD_MARKER = "fb-faulty-child"
SHM_PREFIX = "fbfaulty_"
PARADIGM = Paradigm("faulty", "implementations that crash, hang, lie or scribble (tests only)", rank=990)


def _sma(x, window):
    return kernel("sma").reference(x, window)


@PARADIGM.implements("sma", name="segfaults")
def segfaults(x, window):
    if len(x) > LARGE:
        ctypes.string_at(0)  # an out-of-bounds write in a Cython loop, as the OS sees it
    return _sma(x, window)


@PARADIGM.implements("sma", name="hangs")
def hangs(x, window):
    if len(x) > LARGE:
        time.sleep(3600)
    return _sma(x, window)


@PARADIGM.implements("sma", name="raises")
def raises(x, window):
    raise RuntimeError("this implementation always raises")


@PARADIGM.implements("sma", name="wrong-when-large")
def wrong_when_large(x, window):
    out = _sma(x, window)
    if len(x) > LARGE:
        out[len(out) // 2] += 1e-3
    return out


@PARADIGM.implements("sma", name="scribbles-input")
def scribbles_input(x, window):
    out = _sma(x, window)
    if len(x) > LARGE:
        x[0] += 1.0
    return out


@PARADIGM.implements("sma", name="child-then-hangs")
def child_then_hangs(x, window):
    if len(x) > LARGE:
        SharedMemory(name=f"{SHM_PREFIX}{os.getpid()}", create=True, size=4096)
        subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(3600)  # {CHILD_MARKER}"])
        time.sleep(3600)
    return _sma(x, window)


HOARD_CHUNK = 64 * 2**20
HOARD_MOST = 4 * 2**30
"""Where hoarding stops if no memory limit stopped it first (the test then fails, the
machine survives)."""


@PARADIGM.implements("sma", name="hoards-memory")
def hoards_memory(x, window):
    """Fills memory 64 MiB at a time, far beyond any limit a test sets: a MemoryError
    under RLIMIT_AS, the OOM killer's SIGKILL under a cgroup's limit."""
    if len(x) > LARGE:
        import numpy as np

        hoard = [np.ones(HOARD_CHUNK // 8) for _ in range(HOARD_MOST // HOARD_CHUNK)]
        del hoard
    return _sma(x, window)
