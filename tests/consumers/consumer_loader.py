"""Import ``consumers/<name>/handler.py`` (every consumer's module is called ``handler``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

CONSUMERS_DIR = Path(__file__).resolve().parent.parent.parent / "consumers"


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"consumer_{name}_handler", CONSUMERS_DIR / name / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
