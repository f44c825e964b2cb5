"""`python -m segstudio` is the same as the `segstudio` command."""

from __future__ import annotations

import sys

from segstudio.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
