"""`python -m ingestion.slim_ci prod-state|pr`: the command line of `cli`."""

import sys

from ingestion.slim_ci.cli import main

if __name__ == "__main__":
    sys.exit(main())
