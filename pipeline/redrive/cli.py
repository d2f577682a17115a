"""``python -m pipeline redrive --consumer NAME``: re-deliver the records behind on-failure messages.

For each message of the consumer's on-failure queue: read its range from the shard (by sequence
number), keep the records the mapping's filters let through, call the consumer's own handler
in this process with a Kinesis event of them (so ``process_batch``'s ordering, partial-batch
and idempotency rules hold), and delete the message only when every record of its range
succeeded. Records no longer on the stream are reported lost with their range and the message
is kept. ``--dry-run`` only reads (messages are received with a zero visibility timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline import DEFAULT_REGION, PROJECT_ROOT, entry_points
from pipeline.aws.events import EventContext, kinesis_event
from pipeline.aws.kinesis import Record
from pipeline.names import DEFAULT_STAGE, TWIN_AWS_ENDPOINT, twin_connections_url
from pipeline.redrive import RedriveError
from pipeline.redrive.ranges import FailedRange, Selection, select
from pipeline.redrive.target import Target, from_aws

MAX_MESSAGES = 1000  # one run handles at most this many queue messages
VISIBILITY_S = 300  # messages being redriven stay hidden from a concurrent run meanwhile
READ_ROUNDS = 1000  # GetRecords calls per range, at most
TRIMMED_CODES = {"InvalidArgumentException", "ResourceNotFoundException"}
# How the twin runs a consumer is the twin's to say: its ``twin`` entry point in this group
# (pyproject.toml), found by name as ``python -m pipeline`` finds the twin's commands, so this tool
# for real AWS does not depend on the twin.
REDRIVE_TARGETS = "websocket_pipeline.redrive_targets"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The consumer, where it runs, and ``--dry-run`` / ``--json``."""
    parser.add_argument("--consumer", required=True, help="consumer name (consumers/<name>/)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be done")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stage's stack (AWS credentials from the env)")
    where.add_argument("--aws-endpoint", metavar="URL",
                       help=f"the local twin's AWS endpoint (default {TWIN_AWS_ENDPOINT})")
    parser.add_argument("--stage", default=DEFAULT_STAGE,
                        help=f"twin: the stage (default {DEFAULT_STAGE})")
    parser.add_argument("--assembly", type=Path, default=PROJECT_ROOT / "cdk.out",
                        help="twin: the cloud assembly it runs (default cdk.out)")
    parser.add_argument("--connections-url", metavar="URL",
                        help="twin: its @connections URL (default "
                        f"{twin_connections_url('<stage>')})")


def run(args: argparse.Namespace) -> int:
    """Redrive (or list) every on-failure message of the consumer."""
    try:
        if args.stack:
            target = from_aws(args.consumer, stack_name=args.stack)
        else:
            target = _from_twin(args.consumer, assembly=args.assembly, stage=args.stage,
                                aws_endpoint=args.aws_endpoint or TWIN_AWS_ENDPOINT,
                                connections_url=args.connections_url)
        report = redrive(target, dry_run=args.dry_run)
    except (RedriveError, ClientError, BotoCoreError) as exc:
        print(f"redrive: {exc}", file=sys.stderr)
        return 2
    for row in report["messages"]:
        lost = row["lost"]
        print(f"{row['shardId']} {row['start']}..{row['end']} ({row['batchSize']} records): "
              f"{row['action']}" + (f"; LOST {lost['count']} records {lost['from']}..{lost['to']}"
                                    if lost else ""))
    s = report["summary"]
    print(f"{s['messages']} messages: {s['deleted']} redriven and deleted, {s['kept']} kept, "
          f"{s['recordsRedelivered']} records re-delivered, {s['recordsLost']} lost"
          + (" (dry run: nothing changed)" if args.dry_run else ""))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if s["kept"] and not args.dry_run else 0


def _from_twin(consumer: str, **where: Any) -> Target:
    found = [ep for ep in entry_points(REDRIVE_TARGETS) if ep.name == "twin"]
    if not found:
        raise RedriveError("the local twin is not in this build: use --stack")
    target: Target = found[0].load()(consumer, **where)
    return target


def redrive(target: Target, *, dry_run: bool) -> dict[str, Any]:
    """The run's report: one row per queue message."""
    sqs = target.clients["sqs"]
    rows: list[dict[str, Any]] = []
    handler: Any = None
    for message in _receive_all(sqs, target.queue_url, dry_run):
        row: dict[str, Any] = {"messageId": message["MessageId"], "shardId": None,
                               "start": None, "end": None, "batchSize": 0, "found": 0,
                               "redelivered": 0, "failed": [], "lost": None, "deleted": False}
        rows.append(row)
        try:
            failed = FailedRange.from_message(message["Body"])
        except RedriveError as exc:
            row["action"] = f"kept: {exc}"
            continue
        row.update(shardId=failed.shard_id, start=failed.start, end=failed.end,
                   batchSize=failed.batch_size)
        selection = select(failed, _read_range(target, failed), target.filters)
        row["found"] = len(selection.records)
        if not selection.complete:
            row["lost"] = {"count": selection.lost_count, "from": selection.lost_from,
                           "to": selection.lost_to}
        if dry_run:
            row["action"] = f"would re-deliver {len(selection.records)} records"
            continue
        if selection.records:
            handler = handler or _load_handler(target)
            row["failed"] = _deliver(handler, target, failed, selection)
            row["redelivered"] = len(selection.records) - len(row["failed"])
        if not row["failed"] and selection.complete:
            sqs.delete_message(QueueUrl=target.queue_url, ReceiptHandle=message["ReceiptHandle"])
            row["deleted"] = True
            row["action"] = f"re-delivered {row['redelivered']} records, message deleted"
        else:
            # Visible again at once: the next run (after the cause is fixed) picks it up.
            sqs.change_message_visibility(QueueUrl=target.queue_url,
                                          ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
            row["action"] = (f"kept: {len(row['failed'])} records failed again"
                             if row["failed"] else "kept: part of the range is lost")
    summary = {
        "messages": len(rows), "deleted": sum(r["deleted"] for r in rows),
        "kept": sum(not r["deleted"] for r in rows),
        "recordsRedelivered": sum(r["redelivered"] for r in rows),
        "recordsLost": sum(r["lost"]["count"] for r in rows if r["lost"]),
    }
    return {"consumer": target.consumer, "queueUrl": target.queue_url,
            "stream": target.stream_name, "dryRun": dry_run, "messages": rows,
            "summary": summary}


def _receive_all(sqs: Any, queue_url: str, dry_run: bool) -> list[dict[str, Any]]:
    """Every message (up to :data:`MAX_MESSAGES`). A dry run does not hide them: a zero
    visibility timeout, and a message seen twice ends the reading."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < MAX_MESSAGES:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  VisibilityTimeout=0 if dry_run else VISIBILITY_S
                                  ).get("Messages", [])
        new = [m for m in got if m["MessageId"] not in seen]
        if not new:
            break
        seen.update((m["MessageId"], m) for m in new)
    return list(seen.values())


def _read_range(target: Target, failed: FailedRange) -> list[Record]:
    """The shard's records from the range's start to its end (fewer if trimmed)."""
    kinesis = target.clients["kinesis"]
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=target.stream_name, ShardId=failed.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=failed.start,
        )["ShardIterator"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in TRIMMED_CODES:
            return []  # the start is past retention (or the shard is gone): select() reports it
        raise
    out: list[Record] = []
    for _ in range(READ_ROUNDS):
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for r in page["Records"]:
            if int(r["SequenceNumber"]) > int(failed.end):
                return out
            out.append(Record(r["SequenceNumber"], r["PartitionKey"], bytes(r["Data"]),
                                    r["ApproximateArrivalTimestamp"].timestamp()))
        iterator = page.get("NextShardIterator")
        if not iterator or (not page["Records"] and page.get("MillisBehindLatest", 0) == 0):
            return out
    return out


class _LambdaContext:
    """What ``process_batch`` reads from Lambda's context object."""

    def __init__(self, function_name: str, timeout_s: float) -> None:
        self.function_name = function_name
        self.aws_request_id = f"redrive-{uuid.uuid4()}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load_handler(target: Target) -> Any:
    """Import the consumer's handler with its function's environment. Its logs (printed to
    stdout by Powertools) go to stderr, keeping stdout for the report; its EMF metrics are off:
    they become metrics only in a Lambda function's CloudWatch Logs, and here they were a raw
    JSON line on the console after the summary (issue 25)."""
    os.environ.update(target.environment)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    spec = importlib.util.spec_from_file_location(f"redrive_{target.consumer}_handler",
                                                  target.handler_path)
    if spec is None or spec.loader is None:
        raise RedriveError(f"cannot load {target.handler_path}")
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(sys.stderr):
        spec.loader.exec_module(module)
    return module.lambda_handler


def _deliver(handler: Any, target: Target, failed: FailedRange,
             selection: Selection) -> list[str]:
    """Call the handler with the range's records; the sequence numbers that failed."""
    stream_arn = failed.stream_arn or target.stream_name
    event = kinesis_event(selection.records, EventContext(
        shard_id=failed.shard_id, stream_arn=stream_arn,
        region=os.environ.get("AWS_REGION", DEFAULT_REGION),
        invoke_identity_arn=f"redrive:{target.function_name}"))
    with contextlib.redirect_stdout(sys.stderr):
        try:
            response = handler(event, _LambdaContext(target.function_name, target.timeout_s))
        except Exception:  # a function error fails the whole batch, as in Lambda
            return [r.sequence_number for r in selection.records]
    items = (response or {}).get("batchItemFailures", []) if isinstance(response, dict) else []
    if not items:
        return []
    # Lambda retries from the lowest failed sequence number: all later records failed too.
    lowest = min(int(i["itemIdentifier"]) for i in items)
    return [r.sequence_number for r in selection.records if int(r.sequence_number) >= lowest]
