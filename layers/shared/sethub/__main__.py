"""``python -m sethub``: the operator CLI (``sethub --help``)."""

from sethub.cli import main

raise SystemExit(main())
