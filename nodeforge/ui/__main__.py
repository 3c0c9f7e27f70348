"""`python -m nodeforge.ui [FILE]` opens the editor."""
import sys

from nodeforge.ui.app import main

sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
