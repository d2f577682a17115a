"""The orchestrator: the synthesized stack running on 127.0.0.1 in one asyncio loop.

Start order: resolve the template; moto (its own thread) and the stack's resources; the gateway's
port, bound but not yet listening (the functions' ``CONNECTIONS_ENDPOINT_URL`` needs it); the warm
Lambda workers (child processes); one event source mapping runner per mapping; only then does the
gateway accept connections, so a client that connects as soon as the port accepts TCP is served by
every part. Stop in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import PROJECT_ROOT
from pipeline.local.cfn import Stack, load_template, resolve_stack
from pipeline.local.errors import FunctionError, TwinError
from pipeline.local.esm.canary import Canary
from pipeline.local.gateway.quotas import GatewayQuotas
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.gateway_access import GatewayAccess
from pipeline.local.readiness import (
    log_mapping_problems,
    prove_mappings_read,
    warn_about_content_types,
)
from pipeline.local.services import AwsServices
from pipeline.local.shard_source import KinesisShardSource, SqsFailureSink
from pipeline.local.workers import FunctionSpec, Workers, function_specs
from pipeline.names import (
    DEFAULT_STAGE,
    TWIN_AWS_PORT,
    TWIN_HOST,
    TWIN_PORT,
    stack_name,
    twin_connections_url,
)

if TYPE_CHECKING:
    from pipeline.local.esm import EventSourceMappingRunner
    from pipeline.local.reconfigure import MappingChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TwinConfig:
    """What ``python -m pipeline local`` was asked for."""

    stage: str = DEFAULT_STAGE
    port: int = TWIN_PORT
    aws_port: int = TWIN_AWS_PORT
    assembly: Path = Path("cdk.out")
    enforce_limits: bool = False
    # A registered stream consumer is CREATING this long (AWS: seconds), so more than 5 start
    # only through the stack's waiter (issue 21 finding 3; pipeline/local/provision.py).
    consumer_activation_s: float = 1.0
    # ``--grow-shards N``: grow_after_s after start, every stream splits to N open shards, as
    # AWS's on-demand scaling would (runtime budgets follow: issue 21 finding 2).
    grow_shards: int | None = None
    grow_after_s: float = 10.0
    idle_timeout_s: float | None = None
    max_connection_life_s: float | None = None
    iam: bool = True  # evaluate the stack's IAM policies locally (``--no-iam``: off)
    function_logs: Path | None = None  # a directory: <function>.log each; None: the twin's stderr
    # GatewayRules: the twin's choices where AWS documents nothing (docs/fidelity.md)
    integration_response_selection: str = "status"
    connect_failure: str = "refuse"
    oidc_dir: Path = Path(".twin") / "oidc"  # auth=jwt: the twin issuer's key and settings
    # Start-up waits this long for every mapping to read its canary (esm/canary.py); generous:
    # a busy 2-core machine starting several twins at once.
    ready_timeout_s: float = 30.0
    # Account quotas and the @connections round trip (pipeline/local/gateway/quotas.py).
    quotas: GatewayQuotas = field(default_factory=GatewayQuotas)
    # Hot reload (pipeline/local/reload.py): consumers run from this folder's sources and are
    # re-imported when they change; None: they run their cdk.out assets (``--no-reload``).
    consumers_dir: Path | None = None
    # The gateway's bind address (WebSocket, @connections, demo page); the AWS services stay on
    # 127.0.0.1. A wildcard address is reached locally (functions, issuer) at 127.0.0.1.
    host: str = TWIN_HOST
    # The synth context (``-c``, stage included) a re-synthesis uses when settings change.
    synth_context: dict[str, str] = field(default_factory=dict)

    @property
    def local_host(self) -> str:
        """Where this machine's own clients reach the gateway (the functions, the issuer)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else _url_host(self.host)

    @property
    def stack_name(self) -> str:
        return stack_name(self.stage)


@dataclass(frozen=True)
class TwinUrls:
    ws: str
    connections: str
    aws: str
    issuer: str | None = None  # auth=jwt: the twin's OIDC issuer

    def as_dict(self) -> dict[str, str]:
        urls = {"ws": self.ws, "connections": self.connections, "aws": self.aws}
        return urls if self.issuer is None else {**urls, "issuer": self.issuer}


class TwinBackend:
    """The gateway's ``IntegrationBackend`` over the in-process services and the workers."""

    def __init__(self, services: AwsServices) -> None:
        self._services = services
        self.workers: Workers | None = None

    def call_aws(self, service: str, action: str, body: bytes, credentials_arn: str | None,
                 content_type: str | None = None) -> Any:
        return self._services.call_aws(service, action, body, credentials_arn, content_type)

    async def invoke_function(self, function_arn: str, event: dict[str, Any]) -> Any:
        if self.workers is None:
            raise TwinError("functions are not running yet")
        result = await self.workers.invoke(function_arn, event)
        if not result.ok:
            raise FunctionError(function_arn, result.payload)
        return result.payload


@dataclass
class RunningTwin:
    """A running twin; ``await RunningTwin(config).start()`` then ``await twin.stop()``."""

    config: TwinConfig
    stack: Stack | None = None
    urls: TwinUrls | None = None
    services: AwsServices | None = None
    workers: Workers | None = None
    _gateway: Any = None
    _runners: list[Any] = field(default_factory=list)
    _source: KinesisShardSource | None = None
    _reloader: Any = None
    _grow: asyncio.TimerHandle | None = None
    _mappings: dict[str, Any] = field(default_factory=dict)  # logical id -> runner
    _sink: Any = None
    _created: int = field(default_factory=lambda: int(time.time()))
    _port: int = 0  # the gateway's (the functions' CONNECTIONS_ENDPOINT_URL)
    _issuer: Any = None  # auth=jwt: the twin's OIDC issuer, kept across reloads
    _resynth: asyncio.Task[None] | None = None
    _resynth_again: bool = False
    _assemblies: list[Path] = field(default_factory=list)  # re-synthesized, removed at stop

    async def start(self) -> TwinUrls:
        from pipeline.local.gateway import (
            Gateway,
            GatewayLimits,
            GatewayRules,
            build_api_model,
        )
        from pipeline.local.patches import check_versions
        from pipeline.local.reconfigure import mapping_configs

        check_versions()  # the patched libraries first: a clear TwinError, not an odd failure
        cfg = self.config
        template = load_template(cfg.assembly, cfg.stack_name)
        self.stack = stack = resolve_stack(template, cfg.stack_name, cfg.assembly.resolve(),
                                           created=self._created)
        for warning in stack.warnings:
            log.warning("template: %s", warning)

        access = AccessControl.from_stack(stack) if cfg.iam else None
        self.services = services = AwsServices(enforce_limits=cfg.enforce_limits, access=access,
                                                consumer_activation_s=cfg.consumer_activation_s)
        aws_url = services.start(cfg.aws_port)
        services.provision(stack)

        backend = TwinBackend(services)
        limits = GatewayLimits()
        if cfg.idle_timeout_s is not None:
            limits = _replace(limits, idle_timeout_s=cfg.idle_timeout_s)
        if cfg.max_connection_life_s is not None:
            limits = _replace(limits, max_connection_s=cfg.max_connection_life_s)
        api = build_api_model(stack, cfg.stage)
        warn_about_content_types(api)
        gateway_access = GatewayAccess(access, api.api_id, cfg.stage) if access else None
        self._gateway = Gateway(api, backend, stage=cfg.stage, host=cfg.host,
                                port=cfg.port, limits=limits, access=gateway_access,
                                rules=GatewayRules(cfg.integration_response_selection,
                                                   cfg.connect_failure),
                                quotas=cfg.quotas)
        # The port is bound now (the functions need it) but accepts connections only once
        # every mapping reads the stream: a frame sent earlier would never be answered.
        port = self._gateway.reserve()

        self._port = port
        specs, folders = self._function_specs(stack)
        from pipeline.local.web import routes

        self._gateway.extra_routes = routes(cfg.stage, self._issuer)
        self.workers = Workers(specs, aws_url)
        backend.workers = self.workers
        await self.workers.start()

        loop = asyncio.get_running_loop()
        canary = Canary()
        self._source = KinesisShardSource(services, loop)
        self._sink = SqsFailureSink(services)
        for lid, mapping in mapping_configs(stack).items():
            if access is not None and mapping.role:  # what CreateEventSourceMapping would refuse
                log_mapping_problems(access, stack.resources[lid], mapping.role)
            runner = await self._run_mapping(mapping, canary)
            config = mapping.config
            canary.expect(config.uuid, self._source.stream_arn_of(config.event_source_arn),
                          runner.shard_ids)
        await prove_mappings_read(services, canary, self._runners, cfg.ready_timeout_s)
        await self._gateway.start()
        if cfg.consumers_dir is not None:
            from pipeline.local.reload import Reloader

            # A synth reads the project's consumers/ only: another folder's settings are reported.
            synth_reads = cfg.consumers_dir.resolve() == (PROJECT_ROOT / "consumers").resolve()
            self._reloader = Reloader(
                self.workers, folders, cfg.consumers_dir,
                on_template_change=self.template_changed if synth_reads else None)
            await self._reloader.start()

        self.urls = TwinUrls(
            ws=f"ws://{_url_host(cfg.host)}:{port}/{cfg.stage}",
            connections=f"http://{_url_host(cfg.host)}:{port}/{cfg.stage}/@connections",
            aws=aws_url,
            issuer=self._issuer.issuer if self._issuer is not None else None,
        )
        if cfg.grow_shards is not None:
            self._grow = loop.call_later(cfg.grow_after_s, self.grow_streams, cfg.grow_shards)
        return self.urls

    def _function_specs(self, stack: Stack) -> tuple[list[FunctionSpec], dict[str, Any]]:
        """The functions as the workers run them, and the consumer folders they run from."""
        cfg = self.config
        assert self.services is not None
        specs = function_specs(
            stack, connections_url=twin_connections_url(cfg.stage, self._port, cfg.local_host))
        if cfg.function_logs is not None:
            specs = [_replace(s, log_file=cfg.function_logs / f"{s.log_name}.log") for s in specs]
        specs, self._issuer = _adopt_issuer(specs, f"http://{cfg.local_host}:{self._port}",
                                            cfg.oidc_dir, self._issuer)
        folders: dict[str, Any] = {}
        if cfg.consumers_dir is not None:
            from pipeline.local.reload import source_folders

            folders = source_folders(((s.name, s.label) for s in specs), cfg.consumers_dir)
            # ... and their layer's pipeline.runtime from the checkout's sources, ahead of the
            # layer's copy (pure Python, the same code before any edit): tracebacks name
            # pipeline/runtime/*.py, not cdk.out/asset.<hash>/python/pipeline/runtime.
            specs = [_replace(s, code_dir=folders[s.name].path,
                              layer_dirs=(PROJECT_ROOT, *s.layer_dirs))
                     if s.name in folders else s for s in specs]
        return specs, folders

    def template_changed(self, why: str) -> None:
        """The consumers' settings changed: re-synthesize in the background and apply the new
        template in place (one synth at a time; changes during it get one more)."""
        _say(f"reload: {why}: re-synthesizing in the background")
        if self._resynth is not None and not self._resynth.done():
            self._resynth_again = True
            return
        self._resynth = asyncio.create_task(self._resynthesize(), name="re-synthesize")

    async def _resynthesize(self) -> None:
        from pipeline.local.reconfigure import synthesize_in_background

        while True:
            self._resynth_again = False
            outdir = Path(tempfile.mkdtemp(prefix="twin-synth-"))
            self._assemblies.append(outdir)
            try:
                await synthesize_in_background(PROJECT_ROOT, outdir,
                                               {**self.config.synth_context,
                                                "stage": self.config.stage})
                if not self._resynth_again:  # else: stale already, synthesize again
                    await self.apply_template(outdir)
            except TwinError as exc:
                _say(f"reload: not applied (the twin runs as before): {exc}")
            except Exception as exc:  # a reload must never take the twin down
                log.exception("applying the re-synthesized template failed")
                _say(f"reload: not applied (the twin runs as before): {type(exc).__name__}")
            if not self._resynth_again:
                return

    async def apply_template(self, assembly: Path) -> None:
        """Apply a synthesized assembly to the running twin (pipeline/local/reconfigure.py):
        routes, functions (IAM, environment...) and event source mappings change in place;
        streams, roster and queues are kept."""
        from pipeline.local.gateway import build_api_model
        from pipeline.local.reconfigure import (
            create_in_place,
            delete_stream_consumers,
            function_changes,
            function_of,
            plan,
        )

        assert self.stack is not None and self.services is not None and self.workers is not None
        cfg, running = self.config, self.stack
        new = resolve_stack(load_template(assembly, cfg.stack_name), cfg.stack_name,
                            assembly.resolve(), created=self._created)
        api = build_api_model(new, cfg.stage)
        change = plan(running, new, self.route_keys, tuple(api.routes))
        if change.restart:
            _say("reload: not applied: the template now needs what only a restart of the twin "
                 f"creates ({', '.join(change.restart)})")
            return
        specs, folders = self._function_specs(new)
        functions = function_changes(self.workers.specs, specs, running.assembly_dir,
                                     new.assembly_dir)
        labels = {s.name: s.log_name for s in (*self.workers.specs, *specs)}
        labels |= {lid: labels.get(function_of(self._mappings[lid].config), lid)
                   for lid in change.removed}
        await create_in_place(self.services, new, change)  # first: if it fails, nothing changed
        access = self.services.access
        if access is not None:  # roles, policies and function credentials as the new stack says
            access.update(AccessControl.from_stack(new))
        for spec in functions.added:
            await self.workers.add(spec)
        for spec, _ in functions.updated:
            await self.workers.update(spec)
        for lid in (*change.removed, *(c.logical_id for c in change.replaced)):
            runner = self._mappings.pop(lid)
            self._runners.remove(runner)
            await runner.stop()
        for c in change.updated:
            self._mappings[c.logical_id].update(c.config)
        for c in (*change.added, *change.replaced):  # started before the routes lead to them
            if access is not None and c.role:
                log_mapping_problems(access, new.resources[c.logical_id], c.role)
            await self._run_mapping(c)
        self._gateway.replace_api(api)
        for spec in functions.removed:  # their mappings are stopped: nothing invokes them
            await self.workers.remove(spec.name)
        delete_stream_consumers(self.services, running, change)
        if self._reloader is not None:
            self._reloader.watch(folders)
        self.stack = new
        _say("reload: template applied: "
             + "; ".join(filter(None, (functions.summary(), change.summary(labels)))))

    async def _run_mapping(self, mapping: MappingChange,
                           canary: Canary | None = None) -> EventSourceMappingRunner:
        """Start one event source mapping (at start-up, or added by a reload)."""
        from pipeline.local.esm import EventSourceMappingRunner

        assert self._source is not None and self.workers is not None and self._sink is not None
        runner = EventSourceMappingRunner(mapping.config, self._source, self.workers, self._sink,
                                          invoke_identity_arn=mapping.role, canary=canary)
        await runner.start()
        self._mappings[mapping.logical_id] = runner
        self._runners.append(runner)
        return runner

    def grow_streams(self, target: int) -> None:
        """Split every stream's shards until ``target`` are open (at most double per step)."""
        assert self.services is not None
        kinesis = self.services.kinesis
        for stream in list(kinesis.streams.values()):
            while (count := len(stream.open_shards)) < target:
                kinesis.grow(stream, min(target, 2 * count))
            log.warning("stream %s: %d open shards (--grow-shards)", stream.name,
                        len(stream.open_shards))

    @property
    def route_keys(self) -> tuple[str, ...]:
        """The route keys the running stage serves (empty before :meth:`start`)."""
        return tuple(self._gateway.api.routes) if self._gateway is not None else ()

    @property
    def function_log_names(self) -> tuple[str, ...]:
        """The functions' log names (``echo``...), as in ``<function-logs>/<name>.log``."""
        return tuple(self.workers.log_names) if self.workers is not None else ()

    async def stop(self) -> None:
        """Stop in reverse order; every part is stopped even if another fails."""
        if self._reloader is not None:
            await _quietly(self._reloader.stop())
            self._reloader = None
        if self._resynth is not None:
            self._resynth.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resynth
        for directory in self._assemblies:
            shutil.rmtree(directory, ignore_errors=True)
        if self._grow is not None:
            self._grow.cancel()
        if self._gateway is not None:  # first: clients get 1001 and their $disconnect
            await _quietly(self._gateway.stop())
            self._gateway = None
        steps: list[Any] = [r.stop() for r in self._runners]
        self._runners.clear()
        self._mappings.clear()
        for step in steps:
            await _quietly(step)
        if self.workers is not None:
            await _quietly(self.workers.stop())
            self.workers = None
        if self._source is not None:
            self._source.close()
            self._source = None
        if self.services is not None:
            self.services.stop()
            self.services = None


def _adopt_issuer(specs: list[Any], url: str, directory: Path,
                  issuer: Any = None) -> tuple[list[Any], Any]:
    """``auth=jwt``: the authorizer trusts the twin's issuer at *url* (the template's issuer
    cannot sign for the twin); every other function is unchanged. *issuer*: the one the twin
    made at start (a reload keeps it, and its key)."""
    from pipeline.local.oidc import TwinIssuer, adopt

    out = []
    for spec in specs:
        adopted = adopt(spec.environment, url)
        if adopted is not None:
            environment, audience = adopted
            if issuer is None:
                issuer = TwinIssuer.create(directory, url, audience)
                configured = spec.environment.get("JWT_ISSUER")
                instead = f" instead of {configured}" if configured and configured != url else ""
                log.warning("auth=jwt: %s trusts the twin's OIDC issuer %s%s (audience %s); "
                            "`python -m pipeline token --sub NAME` mints tokens",
                            spec.name, url, instead, audience)
            spec = _replace(spec, environment=environment)
        out.append(spec)
    return out, issuer


def _say(line: str) -> None:
    """A console line (the reload lines go where the banner went)."""
    print(line, flush=True)


def _url_host(host: str) -> str:
    """*host* as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _replace(limits: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(limits, **changes)


async def _quietly(step: Any) -> None:
    try:
        await step
    except Exception:
        log.exception("error while stopping the twin")
