"""Every render in tests/templates is a differential test of the compiled render (vtl_compile).

An autouse fixture replaces ``vtl.render`` for these tests: each call renders with airspeed alone
(``compiled=False``), with the compiled plan alone, and by the product's path (``vtl.render``),
and checks they agree: the same output, or the same exception type and message (a compiled plan
that raises must do so only where airspeed fails; ``vtl_compile.Fallback`` hands a render to
airspeed). The context is deep-copied for each render. The test then sees the product's result.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.local import vtl, vtl_compile

# How the renders of this session went: "compiled", "fallback" (Fallback raised), "error" (both
# failed), "not compiled" (the template is refused). Read by test_vtl_compile.py.
DIFFERENTIAL_COUNTS: Counter[str] = Counter()


# A method rendered without a call is airspeed's closure: its address differs between renders.
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _outcome(fn: Callable[[], str]) -> tuple[Any, ...]:
    try:
        return ("output", _ADDRESS.sub(" at 0x", fn()))
    except Exception as exc:
        return ("error", type(exc), _ADDRESS.sub(" at 0x", str(exc)))


def differential_render(real: Callable[..., str], text: str, *, body: str,
                        context: Any, **kwargs: Any) -> str:
    """``real(text, ...)``, checked against airspeed alone and the compiled plan alone."""
    if not kwargs.pop("compiled", True):
        return real(text, body=body, context=context, compiled=False, **kwargs)
    expected = _outcome(lambda: real(text, body=body, context=copy.deepcopy(context),
                                     compiled=False, **kwargs))
    try:
        plan = vtl.compiled_template(text)
    except vtl.VtlSyntaxError:
        plan = None
        assert expected[0] == "error"
    if plan is None:
        DIFFERENTIAL_COUNTS["not compiled"] += 1
    else:
        namespace = vtl.request_namespace(body, copy.deepcopy(context),
                                          kwargs.get("stage_variables"), kwargs.get("params"))
        try:
            got = ("output", _ADDRESS.sub(" at 0x", plan.render(namespace)))
        except vtl_compile.Fallback:
            DIFFERENTIAL_COUNTS["fallback"] += 1
        except Exception as exc:
            assert expected[0] == "error", f"compiled render raised {exc!r}, airspeed gave {expected}"
            DIFFERENTIAL_COUNTS["error"] += 1
        else:
            assert got == expected, f"compiled {got!r} != airspeed {expected!r}"
            DIFFERENTIAL_COUNTS["compiled"] += 1
    product = _outcome(lambda: real(text, body=body, context=copy.deepcopy(context), **kwargs))
    assert product == expected, f"vtl.render {product!r} != airspeed {expected!r}"
    return real(text, body=body, context=context, **kwargs)


@pytest.fixture(autouse=True)
def compiled_render_equals_airspeed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = vtl.render

    def checked(text: str, **kwargs: Any) -> str:
        return differential_render(real, text, **kwargs)

    monkeypatch.setattr(vtl, "render", checked)
    yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if DIFFERENTIAL_COUNTS:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(DIFFERENTIAL_COUNTS.items()))
        terminalreporter.write_line(f"vtl differential (compiled plan vs airspeed): {counts}")
