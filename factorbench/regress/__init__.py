"""The regression gate across commits (wall time through asv, or callgrind instruction counts)."""
