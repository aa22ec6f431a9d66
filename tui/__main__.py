"""`python -m tunedoc.tui`: the app (what `tunedoc serve` runs for each browser session)."""

import sys

from tunedoc.tui.cli import app_main

sys.exit(app_main())
