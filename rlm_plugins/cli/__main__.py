"""`python -m rlm_plugins.cli` runs the command line."""

import sys

from rlm_plugins.cli._main import main

sys.exit(main())
