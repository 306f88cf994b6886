"""Example factorbench plugin: the kernel spec is in zscore.py, one paradigm per module."""
