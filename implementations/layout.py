"""Memory layout: traverse along the contiguous axis, or pay for a copy into the right order."""

import numpy as np

from factorbench.impls._support import arrays
from factorbench.registry import Paradigm

PARADIGM = Paradigm("layout", "traversal matched to the memory order (C vs Fortran)", rank=20)


@PARADIGM.implements("row_sums", name="layout-matched")
def row_sums_matched(m):
    """Sums rows of C input; accumulates whole columns of F input, so reads stay contiguous."""
    m = arrays.matrix(m)
    if m.flags.f_contiguous and not m.flags.c_contiguous:
        out = np.zeros(m.shape[0])
        for j in range(m.shape[1]):
            out += m[:, j]
        return out
    return m.sum(axis=1)


@PARADIGM.implements("row_sums", name="layout-copy-to-C")
def row_sums_copy(m):
    """np.ascontiguousarray first: what converting to the 'right' order costs."""
    m = arrays.matrix(m)
    return np.ascontiguousarray(m).sum(axis=1)


@PARADIGM.implements("trig", name="layout-matched")
def trig_matched(a, b):
    """Evaluates in a's memory order and gives b the same order first."""
    a, b = arrays.pair(a, b)
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    b = np.asarray(b, order=order)
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, as it should be
        out = np.sin(a, order=order)
        cos_b = np.cos(b, order=order)
    out **= 2
    cos_b **= 2
    out += cos_b
    return out
