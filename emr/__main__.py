"""``python -m emr <command>``: see :mod:`emr.cli`."""
import sys

from emr.cli import main

sys.exit(main())
