"""``python -m buttress``: the same command line as ``buttress``."""

from buttress.cli import main

raise SystemExit(main())
