"""``python -m latticesym``: the same as the ``latticesym`` console script."""

from __future__ import annotations

import sys

from latticesym.cli import main

if __name__ == "__main__":
    sys.exit(main())
