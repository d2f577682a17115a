"""The Locust master's side of the load test (plain Locust's one process plays it too): the
workers' reports collected and merged, and broadcast's one publisher.

Imports Locust: only loadtest/locustfile.py imports this module (Locust's own processes).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from loadtest.config import RunConfig
from loadtest.distributed import merge_workers
from loadtest.live_broadcast import PUBLISHED, Publisher, room_name
from loadtest.report import format_summary
from pipeline.names import twin_ws_url


def send(environment: Environment, kind: str, data: dict[str, Any]) -> None:
    """A custom Locust message: a worker's to its master, the master's to every worker."""
    if environment.runner is not None:
        environment.runner.send_message(kind, data)


class Collector:
    """The master's side: the workers' reports, merged and written once all have arrived."""

    def __init__(self) -> None:
        self.payloads: dict[str, dict[str, Any]] = {}
        self.written = False

    def expected(self, environment: Environment) -> int:
        """The workers' reports (plain Locust's: one), and broadcast's publisher's."""
        runner = environment.runner
        publisher = 1 if PUBLISHER.publisher is not None else 0
        if isinstance(runner, MasterRunner):
            return max(1, len(runner.clients.all)) + publisher
        return 1 + publisher

    def receive(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.add(environment, json.loads(msg.data))

    def add(self, environment: Environment, payload: dict[str, Any]) -> None:
        self.payloads[str(payload["worker"])] = payload
        if len(self.payloads) >= self.expected(environment):
            self.write(environment)
            runner = environment.runner
            opts = environment.parsed_options
            if runner is None:
                return
            # Every worker has drained and reported: the run is over. Locust writes its CSV
            # every second (and workers send stats every 3 s), not at exit: with --csv, wait
            # one more round so the CSV holds every request.
            later = 0.0
            if opts is not None and getattr(opts, "csv_prefix", None):
                later = CSV_STATS_INTERVAL_SEC + 0.3
                if isinstance(runner, MasterRunner):
                    later += WORKER_REPORT_INTERVAL
            gevent.spawn_later(later, runner.quit if opts is None or opts.headless else runner.stop)

    def write(self, environment: Environment) -> None:
        if self.written or not self.payloads:
            return
        self.written = True
        # workers first: the merged report's meta is the first one's (the publisher's row last)
        order = sorted(self.payloads, key=lambda k: ("publisher" in self.payloads[k], k))
        report = merge_workers([self.payloads[k] for k in order])
        missing = self.expected(environment) - len(self.payloads)
        if missing > 0:
            report.meta["missingWorkers"] = missing
        opts = environment.parsed_options
        if not getattr(opts, "lt_quiet", False):
            print(format_summary(report), flush=True)
        json_path = str(getattr(opts, "lt_json", "") or "")
        if json_path:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            report.write(path)
            if not getattr(opts, "lt_quiet", False):
                print(f"report: {path}", flush=True)
        plot_path = str(getattr(opts, "lt_plot", "") or "")
        if plot_path:
            from loadtest.plot import write_plot

            write_plot(report, Path(plot_path))


COLLECTOR = Collector()


class PublisherSide:
    """Broadcast on the master (or plain Locust's one process): the run's id and room, the
    workers' ``ready``, the one publisher (a greenlet) and the count every worker is told."""

    def __init__(self) -> None:
        self.publisher: Publisher | None = None
        self.greenlet: gevent.Greenlet[Any, Any] | None = None
        self.done = False

    def new_run(self, environment: Environment, cfg: RunConfig) -> None:
        """A new run (``cfg``: the ``--lt-*`` options); broadcast: its id, room and publisher."""
        opts = environment.parsed_options
        self.publisher, self.greenlet, self.done = None, None, False
        if opts is None or getattr(opts, "lt_scenario", "echo") != "broadcast":
            return
        from loadtest.publisher import make_put

        # set before Locust sends its spawn messages: the workers get it with the options
        opts.lt_run_id = secrets.token_hex(4)
        cfg = dataclasses.replace(cfg, rate=float(opts.lt_rate))
        put = make_put(str(opts.lt_aws_endpoint or "") or None, room_name(opts.lt_run_id))
        self.publisher = Publisher(cfg, cfg.url or twin_ws_url(), run_id=opts.lt_run_id, put=put,
                                   sleep=gevent.sleep)  # fmt: skip

    def ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        pub = self.publisher
        if pub is None or msg.data.get("runId") != pub.run_id:
            return
        pub.ready[str(msg.data["worker"])] = dict(msg.data)
        workers = len(environment.runner.clients.all) if isinstance(environment.runner, MasterRunner) else 1
        if len(pub.ready) >= workers and self.greenlet is None:
            self.greenlet = gevent.spawn(self._publish, environment, pub)

    def _publish(self, environment: Environment, pub: Publisher) -> None:
        try:
            pub.run()
        finally:
            self.tell(environment)

    def tell(self, environment: Environment) -> None:
        """Every worker is told the count (once: at the end, or when Locust stops the run
        first, before Locust's own stop message); the publisher's row goes to the merge."""
        pub = self.publisher
        if pub is None or self.done:
            return
        self.done = True
        pub.stop()
        send(environment, PUBLISHED, pub.told())
        COLLECTOR.add(environment, pub.payload())


PUBLISHER = PublisherSide()
