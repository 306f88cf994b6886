# factorbench with every CPU paradigm. With a registry: `docker build -t factorbench .`
# Without one, scripts/container.sh builds a local Debian base and passes it as BASE.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# A C compiler for the Cython kernels, in this stage only. Python's headers come with the
# python:*-slim images; a plain Debian base needs python3-dev for them.
# Debian package versions are not pinned: a pin breaks as soon as the mirror moves on.
# hadolint ignore=DL3008,SC2046
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
       $(python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || echo python3-dev) \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first, in a layer of their own: a change to factorbench's code rebuilds only
# the layer below. The largest test suites go (120 MB that nothing imports at run time;
# bottleneck, for one, imports its own tests, so not every package's).
COPY pyproject.toml /src/
COPY scripts/requirements.py /src/scripts/
WORKDIR /opt/factorbench/lib/python3.11/site-packages
RUN python3 /src/scripts/requirements.py all > /tmp/requirements.txt \
    && python3 -m venv /opt/factorbench \
    && /opt/factorbench/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && find numpy scipy pandas sklearn pyarrow matplotlib -type d -name tests -prune -exec rm -rf {} +
COPY . /src
# setup.py marks the Cython extension optional; here a missing one fails the build.
RUN /opt/factorbench/bin/pip install --no-cache-dir --no-deps /src \
    && /opt/factorbench/bin/python -c "import factorbench.impls._support.cython_loops"

FROM ${BASE}
# One knob for every thread pool (OpenBLAS, OpenMP, Numba, numexpr): the article's
# OPENBLAS_NUM_THREADS=1 by default, so process-parallel paradigms do not oversubscribe.
ARG THREADS=1
# libgomp: OpenMP of the Cython prange kernels and Numba's threading layer.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group factorbench \
    && install -d -o factorbench /out
COPY --from=build /opt/factorbench /opt/factorbench
ENV PATH=/opt/factorbench/bin:$PATH \
    OPENBLAS_NUM_THREADS=$THREADS \
    OMP_NUM_THREADS=$THREADS \
    NUMBA_NUM_THREADS=$THREADS \
    NUMEXPR_NUM_THREADS=$THREADS \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /out
ENTRYPOINT ["factorbench"]
CMD ["run", "--quick", "--json", "/out/results.json", "--report", "/out/index.html"]
