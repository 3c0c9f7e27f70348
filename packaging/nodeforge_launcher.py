"""Entry script for the packaged app: the same command line as `nodeforge`."""
import sys

from nodeforge.cli import main

if __name__ == "__main__":
    sys.exit(main())
