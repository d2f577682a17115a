"""The runtime's logs and metrics without Powertools, compared with Powertools' own output.

Powertools (still installed: the idempotency utility uses it) is the oracle: the same calls
through its ``Logger`` and ``Metrics`` and through :mod:`pipeline.runtime.logs` and
:func:`pipeline.runtime.observability.emf` give the same JSON, key for key, except the
timestamp's value.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from typing import Any

import pytest

from pipeline import PROJECT_ROOT
from pipeline.runtime import observability as obs
from pipeline.runtime.logs import StructuredLogger, log_level

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def _calls(logger: Any) -> None:
    """The same calls, on the same lines, for either logger."""
    logger.append_keys(function_request_id="req-1")
    logger.info("plain", extra={"room": "lobby", "n": 3, "nested": {"a": [1, None]}})
    logger.warning("with %s args", "two")
    logger.info({"as": "a dict"})
    logger.debug("below the level")
    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("record failed", extra={"sequenceNumber": "4956"})
    logger.error("unicode ✓ and a set", extra={"ids": {"x"}})


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_the_log_lines_are_powertools_lines(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools import Logger

    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    for variable in ("AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    _calls(Logger(service="oracle-svc", stream=sys.stdout))
    theirs = _lines(capsys.readouterr().out)
    logging.getLogger("oracle-svc").handlers.clear()  # Powertools' handler, on the same name
    _calls(StructuredLogger("oracle-svc"))
    ours = _lines(capsys.readouterr().out)
    assert len(ours) == len(theirs) == 5  # debug is below INFO in both
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}$")
    for mine, oracle in zip(ours, theirs, strict=True):
        assert stamp.match(mine.pop("timestamp")) and stamp.match(oracle.pop("timestamp"))
        assert list(mine) == list(oracle)  # the same keys, in the same order
        assert mine == oracle
    assert ours[3]["exception_name"] == "ValueError"
    assert ours[3]["stack_trace"]["frames"][0]["statement"] == 'raise ValueError("bad frame")'
    assert ours[0]["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"


def test_keys_can_be_removed_and_lines_do_not_reach_the_root_logger(
        capsys: pytest.CaptureFixture[str]) -> None:
    logger = StructuredLogger("keys-svc")
    seen: list[logging.LogRecord] = []

    class Root(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = Root()
    logging.getLogger().addHandler(root)
    try:
        logger.append_keys(function_request_id="a", tenant="t")
        logger.remove_keys(["tenant"])
        logger.info("once")
    finally:
        logging.getLogger().removeHandler(root)
    (line,) = _lines(capsys.readouterr().out)
    assert line["function_request_id"] == "a" and "tenant" not in line
    assert seen == []  # Lambda's runtime has a handler on the root: no second, plain line


@pytest.mark.parametrize(("environ", "level"), [
    ({}, logging.INFO),
    ({"LOG_LEVEL": "debug"}, logging.DEBUG),
    ({"LOG_LEVEL": "INFO", "POWERTOOLS_LOG_LEVEL": "WARNING"}, logging.WARNING),
    ({"POWERTOOLS_LOG_LEVEL": "WARNING", "AWS_LAMBDA_LOG_LEVEL": "ERROR"}, logging.ERROR),
    ({"AWS_LAMBDA_LOG_LEVEL": "", "LOG_LEVEL": "ERROR"}, logging.ERROR),
    ({"LOG_LEVEL": "chatty"}, logging.INFO),
])
def test_the_level_comes_from_lambda_then_powertools_then_log_level(
        environ: dict[str, str], level: int) -> None:
    assert log_level(environ) == level


def _metric_set() -> dict[str, dict[str, object]]:
    obs.pending.clear()
    obs.count(obs.RECORDS_IN, 3)
    obs.latency(obs.GATEWAY_TO_POST_MS, 12.5)
    obs.latency(obs.GATEWAY_TO_POST_MS, -1)
    obs.gauge("OpenConnections", 40)
    (document,) = obs.pending.documents()
    obs.pending.clear()
    return document


def test_an_emf_document_is_what_powertools_serializes() -> None:
    from aws_lambda_powertools import Metrics

    document = _metric_set()
    oracle = Metrics(namespace="WebSocketPipeline", service="echo").serialize_metric_set(
        metrics={name: {**metric, "StorageResolution": 60} for name, metric in document.items()})
    ours = obs.emf(document, namespace="WebSocketPipeline", service="echo",
                   timestamp_ms=int(oracle["_aws"]["Timestamp"]))
    assert json.dumps(ours, sort_keys=False) == json.dumps(oracle, sort_keys=False)
    assert ours["OpenConnections"] == [40.0] and ours["GatewayToPostMs"] == [12.5, 0.0]


@pytest.mark.parametrize("dev", [None, "true", "false", "1", "0"])
@pytest.mark.parametrize("disabled", [None, "true", "false", "yes", "off"])
def test_metrics_are_disabled_by_powertools_rule(dev: str | None, disabled: str | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    environ = {}
    for name, value in (("POWERTOOLS_DEV", dev), ("POWERTOOLS_METRICS_DISABLED", disabled)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
            environ[name] = value
    assert obs.metrics_disabled(environ) == is_metrics_disabled()


def test_a_disabled_flush_writes_nothing_and_clears(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    obs.count(obs.RECORDS_IN)
    obs.flush()
    assert '"_aws"' not in capsys.readouterr().out
    assert not obs.pending.counts


def test_a_handler_import_and_batch_load_no_powertools() -> None:
    """The echo consumer's import and a batch without an ``id``: nothing of Powertools, nothing
    of botocore (its errors are caught by name once a boto3 client loaded them), and neither
    ``http.client`` nor its ``email`` parser (the runtime's HTTP errors are its own)."""
    probe = (
        "import sys, json\n"
        "import consumers.echo.handler\n"
        "from pipeline.runtime import process_batch\n"
        "process_batch({'Records': []}, None, consumers.echo.handler.record_handler)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'http.client' or m.split('.')[0]\n"
        "      in ('aws_lambda_powertools', 'botocore', 'boto3', 'jmespath', 'asyncio', 'email'))))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
