"""One knob for every thread pool a paradigm may use: BLAS/OpenMP, numexpr and Numba."""

from __future__ import annotations

import contextlib
import importlib.util

from threadpoolctl import threadpool_limits


def _numexpr():
    if importlib.util.find_spec("numexpr") is None:
        return None
    import numexpr

    return numexpr


def _numba():
    if importlib.util.find_spec("numba") is None:
        return None
    import numba

    return numba


def current() -> dict:
    """Thread counts and layers in effect now, for the results."""
    state = {}
    if numexpr := _numexpr():
        state["numexpr_threads"] = numexpr.get_num_threads()
    if numba := _numba():
        state["numba_threads"] = numba.get_num_threads()
        state["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    return state


@contextlib.contextmanager
def limited(count: int | None):
    """Run the block with at most ``count`` threads in each pool (None: leave defaults)."""
    if count is None:
        yield
        return
    numexpr, numba = _numexpr(), _numba()
    saved_numexpr = numexpr.set_num_threads(count) if numexpr else None
    saved_numba = None
    if numba:
        if count > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"--threads {count} exceeds Numba's maximum of {numba.config.NUMBA_NUM_THREADS} "
                             "(set NUMBA_NUM_THREADS to raise it)")
        saved_numba = numba.get_num_threads()
        numba.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        if numexpr:
            numexpr.set_num_threads(saved_numexpr)
        if numba:
            numba.set_num_threads(saved_numba)
