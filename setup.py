"""Builds the Cython kernels; everything else about the package is in pyproject.toml."""

import platform
import sys

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

extensions = [kernels]
if sys.platform == "linux" and platform.machine() == "x86_64":
    # trig with glibc's vectorised sin/cos (libmvec): its own module, so that a libc
    # without libmvec costs only the cython-libmvec implementation.
    extensions.append(Extension(
        "factorbench.impls._support.cython_libmvec",
        ["implementations/_support/cython_libmvec.pyx"],
        include_dirs=["implementations/_support"],
        depends=["implementations/_support/libmvec_trig.h"],
        libraries=["mvec", "m"],
        extra_compile_args=["-O3", *OPENMP],
        extra_link_args=OPENMP,
        optional=True,
    ))

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}))
