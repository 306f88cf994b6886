"""Shared helpers of the paradigm modules and the compiled loops they call (Cython, Numba, CUDA)."""
