"""`python -m ugc.cli`: the `ugc` command."""

import sys

from ugc.cli import main

sys.exit(main())
