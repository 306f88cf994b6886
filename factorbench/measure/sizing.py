"""The size model: at what size an implementation is measured within a time budget.

One model for `factorbench run` and the asv suite, so both measure a slow implementation
(the Python loops) at the same sizes. It climbs from the kernel's trial size in steps of
LADDER, timing one warm call at each step and predicting the next from a fixed +
per-element cost fitted to the steps so far: short steps keep fixed costs (thread
wake-ups, process pools, schedulers) from being mistaken for per-element cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from factorbench.kernels import Kernel

LADDER = 8
"""Size ratio between the steps of the climb."""


@dataclass(frozen=True)
class Fit:
    params: dict | None
    """The params to measure at: the requested ones, a smaller size, or None when even
    the trial size is too slow."""
    note: str = ""
    """Why the size was reduced (empty when it was not)."""


def best_call_s(call: Callable, args: tuple, limit_s: float, calls: int = 3) -> float:
    """Best of up to ``calls`` warm calls: one call to a scheduler or a pool can stall for
    100+ ms, which would otherwise pass for per-element cost. Slow calls are not repeated."""
    best = math.inf
    for _ in range(calls):
        start = time.perf_counter()
        call(*args)
        best = min(best, time.perf_counter() - start)
        if best * 10 > limit_s:
            break
    return best


def _predict(points: list[tuple[int, float]], elements: int) -> float:
    """Seconds at ``elements`` from (elements, seconds) points: fixed + per-element cost
    through the last two points, proportional through a single one."""
    if len(points) == 1:
        e, t = points[0]
        return t * elements / max(e, 1)
    (e0, t0), (e1, t1) = points[-2:]
    per_element = max(t1 - t0, 0.0) / max(e1 - e0, 1)
    fixed = max(t1 - per_element * e1, 0.0)
    return fixed + per_element * elements


def nice(value: float) -> int:
    """Round down to two significant digits, so reduced sizes read well in tables."""
    if value < 100:
        return max(1, int(value))
    digits = 10 ** (len(str(int(value))) - 2)
    return int(value // digits * digits)


def trial_params(spec: Kernel, params: dict) -> dict:
    """The first step of the climb: the kernel's trial size with ``params``' other values."""
    return {**params, **spec.trial}


def fit(spec: Kernel, call: Callable, params: dict, call_limit_s: float, seed: int,
        start: dict | None = None) -> Fit:
    """The largest size up to ``params``' own whose one warm call is predicted to take at
    most ``call_limit_s``. ``start`` is the first step (default: the kernel's trial size)."""
    size_param = spec.size_param
    target = params[size_param]
    current = start if start is not None else trial_params(spec, params)
    if spec.elements(current) >= spec.elements(params):
        return Fit(params)
    rng = np.random.default_rng(seed)

    def timed(step: dict) -> float:
        args = spec.make_args(step, rng)
        call(*args)  # warm-up at this size: caches, page faults, a pool's first task
        return best_call_s(call, args, call_limit_s)

    seconds = timed(current)
    if seconds > call_limit_s:
        return Fit(None, f"one call at the trial size {size_param}={current[size_param]:,} took {seconds:.2f} s")
    points = [(spec.elements(current), seconds)]
    while True:
        full_s = _predict(points, spec.elements(params))
        if full_s <= call_limit_s:
            return Fit(params)
        step = {**params, size_param: min(target, current[size_param] * LADDER)}
        if _predict(points, spec.elements(step)) > call_limit_s:
            break
        step_s = timed(step)
        if step_s > call_limit_s:
            break
        current = step
        points.append((spec.elements(step), step_s))
    # The largest size between the last step and the next whose prediction fits.
    size = target
    while size > current[size_param]:
        size = nice(size / 2)
        if _predict(points, spec.elements({**params, size_param: size})) <= call_limit_s:
            break
    chosen = {**params, size_param: max(size, current[size_param])}
    return Fit(chosen, f"measured at {size_param}={chosen[size_param]:,} to fit the time budget "
                       f"(one call at full size: ~{full_s:.3g} s, estimated)")
