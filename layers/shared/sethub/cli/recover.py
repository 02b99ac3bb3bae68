"""``sethub recover``: re-deliver a window of a topic's events to one subscription.

Registered only when ``sethub.recovery`` is installed with the hub.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    return None
