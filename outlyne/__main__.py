"""`python -m outlyne COMMAND ...` (see outlyne.cli)."""

import sys

from outlyne.cli import main

if __name__ == "__main__":
    sys.exit(main())
