"""Import ``consumers/<name>/handler.py`` (every consumer's module is called ``handler``)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from pipeline.registry import consumer_handler


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"consumer_{name}_handler", consumer_handler(name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
