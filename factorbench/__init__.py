"""factorbench: one registry of factor kernels x optimisation paradigms, gated and timed.

    import factorbench as fb
    fb.kernels(); fb.paradigms()
    impl = fb.implementation("sma", "vectorized")
    impl(x, 20)

The plugin API, stable across releases: a module defining ``KERNEL = fb.Kernel(...)``
(inputs from ``fb.price_walk``, parameters checked with ``fb.require_int``) and/or
``PARADIGM = fb.Paradigm(...)`` with ``@PARADIGM.implements("kernel")`` functions, named
by the ``factorbench.plugins`` entry point group, ``--plugin`` or ``[tool.factorbench]``
(see ``factorbench.discovery``).
"""

from factorbench.discovery import ENTRY_POINT_GROUP, PluginError
from factorbench.kernels import CheckInput, Kernel, Params, kernel, kernels, price_walk, require_int
from factorbench.registry import (
    Implementation,
    Paradigm,
    artifacts_dir,
    implementation,
    implementations,
    paradigms,
    registry,
    use_plugins,
)

__all__ = ["ENTRY_POINT_GROUP", "CheckInput", "Implementation", "Kernel", "Paradigm", "Params", "PluginError",
           "artifacts_dir", "implementation", "implementations", "kernel", "kernels", "paradigms", "price_walk",
           "registry", "require_int", "use_plugins"]
