"""``python -m sethub.credentials``: see ``sethub.credentials.command``."""

import sys

from sethub.credentials.command import main

sys.exit(main())
