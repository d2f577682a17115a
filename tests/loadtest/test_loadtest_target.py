from __future__ import annotations

import socket

from loadtest.config import parse_run_args
from loadtest.progress import progress_text
from loadtest.report import Report
from loadtest.target import port_answers, resolve


def test_a_given_url_is_used_as_is_and_nothing_is_started() -> None:
    cfg = parse_run_args(["--url", "wss://abc.example/prod", "--aws-endpoint", "http://x:1"])
    target = resolve(cfg, log=False)
    assert (target.ws, target.aws, target.process) == ("wss://abc.example/prod", "http://x:1", None)
    target.stop()  # nothing to stop: must not fail


def test_port_probe_tells_listening_from_closed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_answers(port)
    assert not port_answers(port)


def test_progress_line_shows_rates_percentiles_and_errors() -> None:
    report = Report()
    for us in (1000, 2000, 3000, 50_000):
        report.record_latency(0.5, us, us)
    report.errors["unknown_action"] = 2
    line = progress_text(report, elapsed=3.0, sent_rate=1000, recv_rate=998.4)
    assert line == (
        "[    3s] sent    1000/s  recv     998/s  p50    2.00 ms  p99   50.02 ms  errors 2"
    )
