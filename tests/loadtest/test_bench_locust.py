"""loadtest.bench_locust's search: up the rates until a step fails, then bisect twice."""

from __future__ import annotations

from loadtest.bench_locust import Engine


def test_the_search_steps_up_then_bisects_between_the_last_pass_and_the_first_failure() -> None:
    engine, tried = Engine("e", []), []
    limit = 13_000.0  # this engine passes every step up to here
    while (rate := engine.next_rate((4000, 8000, 12000, 16000, 20000))) is not None:
        tried.append(rate)
        engine.record(rate, rate <= limit)
    assert tried == [4000, 8000, 12000, 16000, 14000, 13000]
    assert (engine.good, engine.bad) == (13000, 14000)


def test_an_engine_that_passes_every_rate_stops_at_the_last() -> None:
    engine, tried = Engine("e", []), []
    while (rate := engine.next_rate((1000, 2000))) is not None:
        tried.append(rate)
        engine.record(rate, True)
    assert tried == [1000, 2000] and engine.good == 2000 and not engine.bad
