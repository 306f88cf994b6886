"""The tick-data factor workload (seed section 9.2, made correct).

- data.py: deterministic synthetic ticks as Parquet files (`factorbench data ticks`).
- factors.py: the pipeline's exact definition, its float64 reference and the comparison.
- engines.py: Polars (lazy, streaming engine), pandas, NumPy, Numba and Dask DataFrame.
- arrays.py: the NumPy/Numba pipeline over symbol-sorted segments, and the per-tick kernel.
- stream.py: micro-batch streaming, incremental per-symbol state vs recompute.
- measure.py: one engine per fresh process: check, wall time, peak RSS.
"""
