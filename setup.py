"""Builds the Cython kernels; everything else about the package is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP = ["-fopenmp"]  # the *_prange kernels; GCC and Clang with libomp accept it

kernels = Extension(
    "factorbench.impls._support.cython_loops",
    ["implementations/_support/cython_loops.pyx"],
    extra_compile_args=["-O3", *OPENMP],
    extra_link_args=OPENMP,
    # Without a working compiler the package still installs; the cython paradigm then
    # reports "extension not built" and the other paradigms run.
    optional=True,
)

setup(ext_modules=cythonize([kernels], compiler_directives={"language_level": 3}))
