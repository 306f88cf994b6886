"""One module per optimisation paradigm; each defines ``PARADIGM`` and registers through it.

This folder is installed as ``factorbench.impls`` (see pyproject.toml).
"""
