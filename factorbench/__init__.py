"""factorbench: one registry of factor kernels x optimisation paradigms, gated and timed.

    import factorbench as fb
    fb.kernels(); fb.paradigms()
    impl = fb.implementation("sma", "vectorized")
    impl(x, 20)
"""

from factorbench.kernels import kernel, kernels
from factorbench.registry import Implementation, implementation, implementations, paradigms

__all__ = ["Implementation", "implementation", "implementations", "kernel", "kernels", "paradigms"]
