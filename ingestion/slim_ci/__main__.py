"""`python -m ingestion.slim_ci prod-state|pr`, now that the module is a package."""

import sys

from ingestion.slim_ci import main

if __name__ == "__main__":
    sys.exit(main())
