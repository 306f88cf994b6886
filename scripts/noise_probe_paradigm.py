"""An sma implementation whose time scripts/validate_noise.py can stretch: NumPy's
windowed-mean SMA, then a busy wait of (FB_NOISE_SLOWDOWN - 1) x its own compute time. Loaded only by
that script, through FACTORBENCH_PLUGINS."""

import os
import time

import numpy as np

from factorbench.registry import Paradigm

PARADIGM = Paradigm("noise-probe", "an implementation with an injectable slowdown (validate_noise.py)", rank=995)


@PARADIGM.implements("sma", name="noise-probe")
def noise_probe(x, window):
    """windowed-mean SMA, slowed by FB_NOISE_SLOWDOWN (default 1: not at all)"""
    start = time.perf_counter()
    out = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float64), window).mean(axis=1)
    spin_until = time.perf_counter() + (float(os.environ.get("FB_NOISE_SLOWDOWN", "1")) - 1) * (
        time.perf_counter() - start)
    while time.perf_counter() < spin_until:
        pass
    return out
