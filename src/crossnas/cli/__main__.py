"""`python -m crossnas.cli ...` runs the `crossnas` command."""

import sys

from crossnas.cli import main

sys.exit(main())
