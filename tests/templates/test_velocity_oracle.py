"""Differential test: every integration template, rendered by the twin and by Apache Velocity 1.7.

API Gateway renders mapping templates with Velocity 1.7 and Commons Lang 2.6's
``escapeJavaScript`` (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html).
The twin renders them with airspeed (``pipeline/local/vtl.py``). Each template in
``integration_templates/`` (discovered, not listed), with its ``@@PLACEHOLDER@@`` values filled as
the stack fills them, is rendered for a corpus of hostile bodies and ``$context`` values by both,
and the outputs must be byte-identical (or both engines must fail). The twin is checked twice:
the compiled plan the gateway runs and airspeed's plain interpreter.

Skips, saying why, only where ``java``/``javac`` or the jars are missing; with ``CI=true`` the
missing prerequisite is a failure, so CI always runs the oracle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from velocity_oracle import Case, Result, VelocityOracle, missing_prerequisites
from velocity_oracle.corpus import BINDINGS, CONTEXT_BODIES, CONTEXTS, FRAMES, PLACEHOLDERS

from pipeline.infrastructure.templates import TEMPLATES_DIR, render
from pipeline.local import vtl

TEMPLATE_NAMES = sorted(path.name for path in TEMPLATES_DIR.glob("*.vtl"))
STAGE_VARIABLES = {"env": "test"}


def _cases() -> Iterator[tuple[str, Case]]:
    for name in TEMPLATE_NAMES:
        text = render(name, PLACEHOLDERS)
        for i, frame in enumerate(FRAMES):
            yield f"{name}-frame{i}", Case(text, frame, CONTEXTS["base"], STAGE_VARIABLES)
        for label, context in CONTEXTS.items():
            for j, body in enumerate(CONTEXT_BODIES):
                yield f"{name}-{label}-{j}", Case(text, body, context, STAGE_VARIABLES)
    for k, binding in enumerate(BINDINGS):
        for i, frame in enumerate(FRAMES):
            yield f"binding{k}-frame{i}", Case(binding, frame, CONTEXTS["base"], STAGE_VARIABLES)


CASES = dict(_cases())
# Probes of the oracle itself, rendered in the same JVM run (case, Velocity's known output).
PROBES = {
    # The engine differences docs/fidelity.md lists (the twin gives "", 1 and 1e+20).
    "probe-null-reference": (Case("$context.absent|$!context.absent", "", {}, {}),
                             "$context.absent|"),
    "probe-utf16-length": (Case("$input.body.length()", "\U0001f600", {}, {}), "2"),
    "probe-double": (Case("$util.parseJson('1e20')", "", {}, {}), "1.0E20"),
    "probe-escape": (Case("$util.escapeJavaScript($input.body)", "'/\u00e9\U0001f600", {}, {}),
                     "\\'\\/\\u00E9\\uD83D\\uDE00"),
    "probe-null-set": (Case("#set($a = 'kept')#set($a = $nothing)$a", "", {}, {}), "kept"),
}


@pytest.fixture(scope="session")
def velocity_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Every case rendered by Velocity 1.7: one javac and one JVM for the whole corpus."""
    reason = missing_prerequisites()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    oracle = VelocityOracle(tmp_path_factory.mktemp("velocity_oracle"))
    cases = {**CASES, **{probe_id: case for probe_id, (case, _) in PROBES.items()}}
    return dict(zip(cases, oracle.render_all(list(cases.values())), strict=True))


def _twin(case: Case) -> Result:
    try:
        return Result(vtl.render(case.template, body=case.body, context=case.context,
                                 stage_variables=case.stage_variables))
    except vtl.VtlError as exc:
        return Result(None, f"{type(exc).__name__}: {exc}")


def _shown(result: Result) -> Any:
    return result.output if result.error is None else f"<error> {result.error}"


def test_corpus_covers_every_template_with_forty_hostile_frames() -> None:
    assert {"stream_put_record.vtl", "connect_put_item.vtl", "stream_ack_response.vtl",
            "stream_nack_response.vtl"} <= set(TEMPLATE_NAMES)
    assert len(FRAMES) >= 40
    per_template = len(FRAMES) + len(CONTEXTS) * len(CONTEXT_BODIES)
    assert len(CASES) == len(TEMPLATE_NAMES) * per_template + len(BINDINGS) * len(FRAMES)


@pytest.mark.parametrize("case_id", list(CASES))
def test_twin_renders_as_velocity_1_7(case_id: str, velocity_results: dict[str, Result]) -> None:
    case = CASES[case_id]
    expected = velocity_results[case_id]
    got = _twin(case)
    assert (got.error is None) == (expected.error is None), (
        f"twin {_shown(got)!r} vs Velocity 1.7 {_shown(expected)!r}")
    assert got.output == expected.output, "the twin's render differs from Velocity 1.7"


def test_oracle_is_velocity_not_the_twin(velocity_results: dict[str, Result]) -> None:
    # Renders only a JVM gives (stock Velocity's null references, UTF-16 lengths, Double.toString):
    # the agreement above is Velocity 1.7 against the twin, not the twin against itself.
    for probe_id, (_, expected) in PROBES.items():
        assert velocity_results[probe_id] == Result(expected), probe_id


def test_a_missing_jar_is_named_in_the_skip_reason(tmp_path: Path) -> None:
    reason = missing_prerequisites(tmp_path)
    assert reason is not None
    assert str(tmp_path / "velocity-1.7.jar") in reason
    assert "commons-lang-2.6.jar" in reason
