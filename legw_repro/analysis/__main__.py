"""`python -m legw_repro.analysis`: the analysis command line (legw_repro/analysis/cli.py)."""

import sys

from legw_repro.analysis.cli import main

sys.exit(main())
