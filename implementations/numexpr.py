"""numexpr: expressions compiled to a blocked, multi-threaded virtual machine."""

from factorbench.impls._support import arrays
from factorbench.registry import Paradigm

PARADIGM = Paradigm("numexpr", "numexpr.evaluate: blocked, multi-threaded, no temporaries",
                    rank=30, requires=["numexpr"])


def _threads():
    import numexpr

    return {"numexpr_threads": numexpr.get_num_threads()}


@PARADIGM.implements("trig", metrics=_threads)
def trig(a, b):
    """numexpr.evaluate('sin(a)**2 + cos(b)**2')."""
    import numexpr

    a, b = arrays.pair(a, b)
    return numexpr.evaluate("sin(a)**2 + cos(b)**2", local_dict={"a": a, "b": b})


@PARADIGM.implements("row_sums", metrics=_threads)
def row_sums(m):
    """numexpr.evaluate('sum(m, axis=1)') (numexpr reductions run on one thread)."""
    import numexpr

    m = arrays.matrix(m)
    return numexpr.evaluate("sum(m, axis=1)", local_dict={"m": m})
