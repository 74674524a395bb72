"""``python -m docmill``."""

import sys

from docmill.cli.main import main

sys.exit(main())
