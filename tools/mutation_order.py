"""pytest plugin for ``make mutation``: a mutant's tests run fastest first.

mutmut stops a mutant's tests at the first failure, but its fork-server workers run them in no
particular order: a mutant of outbound that any quick test kills often waited first for the
seconds-long timeout tests. This sorts them by the time each took in mutmut's first pass over
the suite (``mutmut-stats.json``). tools/mutation.py loads it through ``PYTEST_PLUGINS``: a
change to ``[tool.mutmut]``'s pytest arguments would make mutmut discard every result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

STATS = Path("mutmut-stats.json")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only a mutant's run: the first pass over the suite keeps pytest's order (and its fixtures'
    # set-up per module), and it is what measures the durations.
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", "") or not STATS.exists():
        return
    durations: dict[str, float] = json.loads(STATS.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
