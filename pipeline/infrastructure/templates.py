"""The integration request templates: read from ``integration_templates/``, placeholders filled.

The files are the only copy (the local twin renders the same text from the synthesized template).
Placeholders are ``@@NAME@@`` because ``${...}`` is VTL syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pipeline import PROJECT_ROOT
from pipeline.infrastructure import TemplateError

TEMPLATES_DIR = PROJECT_ROOT / "integration_templates"
CONNECT_TEMPLATE = "connect_put_item.vtl"
STREAM_TEMPLATE = "stream_put_record.vtl"
ACK_TEMPLATE = "stream_ack_response.vtl"  # integration responses of acked routes (docs/acks.md)
NACK_TEMPLATE = "stream_nack_response.vtl"
_PLACEHOLDER = re.compile(r"@@([A-Z][A-Z0-9_]*)@@")


def render(name: str, values: Mapping[str, str], directory: Path = TEMPLATES_DIR) -> str:
    """The template ``name`` with every ``@@KEY@@`` replaced by ``values[KEY]``.

    Values may be CDK tokens (e.g. a table name); they are substituted as text and resolved
    by CloudFormation. A placeholder without a value is an error, never left in the output.
    """
    path = directory / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(str(path), "integration template is missing") from None
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if unknown:
        raise TemplateError(str(path), f"no value for placeholders {unknown}")
    # the file's final newline is not part of the template: a response template's output is
    # sent to the client as is, and a stray "\n" would end every ack frame
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text.rstrip("\n"))
