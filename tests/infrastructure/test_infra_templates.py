"""Integration template rendering: placeholders filled, never left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.infrastructure import TemplateError
from pipeline.infrastructure.templates import (
    CONNECT_TEMPLATE,
    STREAM_TEMPLATE,
    TEMPLATES_DIR,
    render,
)


def test_placeholders_are_substituted_everywhere(tmp_path: Path) -> None:
    (tmp_path / "t.vtl").write_text('{"a":"@@X@@","b":"@@X@@-@@Y_2@@","c":"$context.x"}')
    assert render("t.vtl", {"X": "1", "Y_2": "z"}, tmp_path) == '{"a":"1","b":"1-z","c":"$context.x"}'


def test_a_placeholder_without_value_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.vtl").write_text("@@X@@ @@MISSING@@")
    with pytest.raises(TemplateError, match=r"no value for placeholders \['MISSING'\]"):
        render("t.vtl", {"X": "1"}, tmp_path)


def test_the_files_final_newline_is_not_part_of_the_template(tmp_path: Path) -> None:
    # a response template's output goes to the client as is: no stray "\n" after an ack frame
    (tmp_path / "t.vtl").write_text('{"action":"ack"}\n\n')
    assert render("t.vtl", {}, tmp_path) == '{"action":"ack"}'


def test_a_missing_template_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="integration template is missing"):
        render("nope.vtl", {}, tmp_path)


@pytest.mark.skipif(
    not (TEMPLATES_DIR / STREAM_TEMPLATE).exists(), reason="integration templates not written yet"
)
def test_the_project_templates_use_exactly_the_contract_placeholders() -> None:
    values = {"TABLE_NAME": "T", "CONNECTION_TTL_SECONDS": "10800", "STREAM_NAME": "S"}
    for name in (CONNECT_TEMPLATE, STREAM_TEMPLATE):
        assert "@@" not in render(name, values)
    with pytest.raises(TemplateError):
        render(STREAM_TEMPLATE, {})
