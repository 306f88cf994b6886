"""Performance history: points of many runs and commits in one store, change points in
each series, and the history report."""
