"""factorbench: one registry of factor kernels x optimisation paradigms, gated and timed.

    import factorbench as fb
    fb.kernels(); fb.paradigms()
    impl = fb.implementation("sma", "vectorized")
    impl(x, 20)

The plugin API, stable across releases: a module defining ``KERNEL = fb.Kernel(...)``
(inputs from ``fb.price_walk``, parameters checked with ``fb.require_int``, input classes
``fb.InputClass`` built with ``fb.with_values``, ``fb.read_only`` and ``fb.large_level``)
and/or ``PARADIGM = fb.Paradigm(...)`` with ``@PARADIGM.implements("kernel")`` functions,
named by the ``factorbench.plugins`` entry point group, ``--plugin`` or ``[tool.factorbench]``
(see ``factorbench.discovery``). An implementation refuses bad input with the built-in
kernels' own ValueError, message included, through ``fb.vector``, ``fb.matrix``,
``fb.check_window`` and ``fb.check_alpha``.
"""

from factorbench.discovery import ENTRY_POINT_GROUP, PluginError
from factorbench.kernels import (
    CheckInput,
    InputClass,
    Kernel,
    Params,
    check_alpha,
    check_window,
    kernel,
    kernels,
    large_level,
    matrix,
    price_walk,
    read_only,
    require_int,
    vector,
    with_values,
)
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

__all__ = ["ENTRY_POINT_GROUP", "CheckInput", "Implementation", "InputClass", "Kernel", "Paradigm", "Params",
           "PluginError", "artifacts_dir", "check_alpha", "check_window", "implementation", "implementations",
           "kernel", "kernels", "large_level", "matrix", "paradigms", "price_walk", "read_only", "registry",
           "require_int", "use_plugins", "vector", "with_values"]
