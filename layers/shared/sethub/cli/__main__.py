"""``python -m sethub.cli``: the same as ``python -m sethub``."""

from sethub.cli import main

raise SystemExit(main())
