"""The import-linter contracts (``.importlinter``, run by ``make lint``) name every part of
``pipeline``: a new module or package is placed in the layers on purpose, not let through."""

from __future__ import annotations

import configparser

from pipeline import PROJECT_ROOT

# What the runtime and the shared facts may import of pipeline (besides pipeline/__init__.py).
RUNTIME_ALLOWED = {"pipeline.aws", "pipeline.names", "pipeline.runtime"}
FACTS = {"pipeline.aws", "pipeline.names"}
TWIN = "pipeline.local"


def _contracts() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / ".importlinter")
    return config


def _modules(config: configparser.ConfigParser, contract: str, key: str) -> set[str]:
    return set(config[f"importlinter:contract:{contract}"][key].split())


def _pipeline_parts() -> set[str]:
    root = PROJECT_ROOT / "pipeline"
    parts = {f"pipeline.{p.stem}" for p in root.glob("*.py") if p.stem != "__init__"}
    parts |= {f"pipeline.{p.name}" for p in root.iterdir() if (p / "__init__.py").is_file()}
    return parts


def test_the_runtime_may_import_only_itself_and_the_shared_facts() -> None:
    config = _contracts()
    assert _modules(config, "runtime", "forbidden_modules") == _pipeline_parts() - RUNTIME_ALLOWED


def test_the_shared_facts_import_nothing_else() -> None:
    config = _contracts()
    assert _modules(config, "shared-facts", "source_modules") == FACTS
    assert _modules(config, "shared-facts", "forbidden_modules") == _pipeline_parts() - FACTS


def test_every_part_but_the_twin_is_kept_from_the_twin() -> None:
    config = _contracts()
    assert _modules(config, "no-twin", "forbidden_modules") == {TWIN}
    # the runtime and the facts are kept from the twin by their own contracts
    expected = _pipeline_parts() - RUNTIME_ALLOWED - {TWIN}
    assert _modules(config, "no-twin", "source_modules") == expected


def test_nothing_in_pipeline_imports_the_load_test() -> None:
    config = _contracts()
    assert _modules(config, "no-loadtest", "source_modules") == {"pipeline"}
    assert _modules(config, "no-loadtest", "forbidden_modules") == {"loadtest"}


def test_the_layer_ships_what_the_runtime_may_import() -> None:
    from pipeline.infrastructure.packaging import LAYER_MODULES, LAYER_PACKAGES

    shipped = {f"pipeline.{p}" for p in LAYER_PACKAGES}
    shipped |= {f"pipeline.{m.removesuffix('.py')}" for m in LAYER_MODULES if m != "__init__.py"}
    assert shipped == RUNTIME_ALLOWED


def test_no_file_of_the_product_outside_the_twin_names_the_twin() -> None:
    """Not even by a module name in a string: the twin's commands and its redrive target are
    entry points (pyproject.toml), so the product's code never spells ``pipeline.local``."""
    root = PROJECT_ROOT / "pipeline"
    naming = [str(p.relative_to(PROJECT_ROOT)) for p in root.rglob("*.py")
              if not p.is_relative_to(root / "local") and TWIN in p.read_text(encoding="utf-8")]
    assert naming == []


def test_the_twin_s_commands_and_redrive_target_are_entry_points() -> None:
    from pipeline import entry_points

    commands = {ep.name: ep.value for ep in entry_points("websocket_pipeline.commands")}
    assert commands == {"local": f"{TWIN}.cli", "token": f"{TWIN}.token_cli"}
    (twin,) = entry_points("websocket_pipeline.redrive_targets")
    assert twin.name == "twin" and callable(twin.load())
