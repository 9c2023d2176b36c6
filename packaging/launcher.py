"""The bundle's entry point: the same as `attention-explorer` from a source install."""

import sys

from explorer.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
