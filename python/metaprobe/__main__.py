"""``python -m metaprobe <command>``: see :mod:`metaprobe.cli`."""
import sys

from .cli import main

sys.exit(main())
