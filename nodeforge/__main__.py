"""`python -m nodeforge` is the `nodeforge` command."""
import sys

from nodeforge.cli import main

sys.exit(main())
