"""``python -m reconkit``: the command line."""

from .cli import main

raise SystemExit(main())
