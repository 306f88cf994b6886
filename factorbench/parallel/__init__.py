"""Parallel plumbing: process pools with shared memory, Dask schedulers and clusters, GPU timing."""
