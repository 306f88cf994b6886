"""`python -m factorbench`: the same as the `factorbench` console script."""

import sys

from factorbench.cli import main

sys.exit(main())
