"""Memory layout: traverse along the contiguous axis, or pay for a copy into the right order."""

import numpy as np

from factorbench import Paradigm

PARADIGM = Paradigm("layout", "traversal matched to the memory order (C vs Fortran)", rank=20)


@PARADIGM.implements("row_sums", name="layout-matched")
def row_sums_matched(m):
    """Sums rows of C input; accumulates whole columns of F input, so reads stay contiguous."""
    if m.flags.f_contiguous and not m.flags.c_contiguous:
        out = np.zeros(m.shape[0])
        for j in range(m.shape[1]):
            out += m[:, j]
        return out
    return m.sum(axis=1)


@PARADIGM.implements("row_sums", name="layout-copy-to-C")
def row_sums_copy(m):
    """np.ascontiguousarray first: what converting to the 'right' order costs."""
    return np.ascontiguousarray(m).sum(axis=1)


@PARADIGM.implements("trig", name="layout-matched")
def trig_matched(a, b):
    """Evaluates in a's memory order and gives b the same order first."""
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    b = np.asarray(b, order=order)
    out = np.sin(a, order=order)
    out **= 2
    cos_b = np.cos(b, order=order)
    cos_b **= 2
    out += cos_b
    return out
