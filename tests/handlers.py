"""A function's handler module imported anew, for tests that need its import-time state.

A handler builds its clients and Powertools objects when imported, from the environment of
that moment; a test that sets its own environment imports a fresh copy under its own name,
whatever copy other tests (or ``devstack.functions``) imported before.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def fresh_handler(folder: str, prefix: str) -> ModuleType:
    """``functions/<folder>/<folder>_handler.py`` imported now as ``<prefix>_<folder>_handler``."""
    path = ROOT / "functions" / folder / f"{folder}_handler.py"
    spec = importlib.util.spec_from_file_location(f"{prefix}_{folder}_handler", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import does: dataclasses look their module up there.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
