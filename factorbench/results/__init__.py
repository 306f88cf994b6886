"""Results: the typed schema of a results file, derived figures (cases, speed-ups), run-vs-run comparison, formatting."""
