"""Lambda workers: each function runs in long-lived child processes, like warm containers.

:class:`Workers` is the twin's ``Invoker``: ``await workers.invoke(name_or_arn, event)``. A pool
per function spawns up to ``max_concurrency`` processes on demand (one invocation at a time
each, as in Lambda); the timeout kills and replaces the process; a dead process is a
``Runtime.ExitError``. Error shapes follow the Lambda runtime:
https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import struct
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from pipeline.aws.limits import REGION
from pipeline.local.cfn import Stack
from pipeline.local.cfn_types import stream_shard_count
from pipeline.local.errors import WorkerError
from pipeline.local.esm.interfaces import InvokeResult
from pipeline.local.iam.access import function_access_key, function_secret_key
from pipeline.names import CONNECTIONS_ENDPOINT_VARIABLE

log = logging.getLogger(__name__)
WORKER_SCRIPT = Path(__file__).with_name("worker_main.py")
_HEADER = struct.Struct(">I")
INIT_TIMEOUT_S = 10.0
# What a worker inherits from the twin's own environment; everything else is the template's.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


# Processes per function: spawned on demand, so the cap only costs memory under load.
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 10


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the template declares it."""

    name: str
    arn: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0
    memory_mb: int = 128
    max_concurrency: int = DEFAULT_CONCURRENCY
    log_file: Path | None = None  # the function's logs (its stderr); None: the twin's stderr
    label: str = ""  # the name a person knows it by (``echo``), for its log file; default: name

    @property
    def log_name(self) -> str:
        """The file name of its logs: the logical name (``echo``), never the physical CFN name."""
        return self.label or self.name


def rewrite_environment(variables: Mapping[str, Any], *, connections_url: str) -> dict[str, str]:
    """The function's variables as strings, its @connections endpoint
    (:data:`~pipeline.names.CONNECTIONS_ENDPOINT_VARIABLE`, the stage's callback URL on AWS)
    pointed at the twin's gateway."""
    out = {key: str(value) for key, value in variables.items()}
    if CONNECTIONS_ENDPOINT_VARIABLE in out:
        out[CONNECTIONS_ENDPOINT_VARIABLE] = connections_url
    return out


def worker_environment(spec: FunctionSpec, aws_url: str) -> dict[str, str]:
    """The complete environment of a worker process (no leakage between functions)."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.update({
        "AWS_ENDPOINT_URL": aws_url,
        # Per-function credentials: the twin maps the key to the function's role (local IAM).
        "AWS_ACCESS_KEY_ID": function_access_key(spec.name),
        "AWS_SECRET_ACCESS_KEY": function_secret_key(spec.name), "AWS_SESSION_TOKEN": "twin",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(spec.timeout_s)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "twin",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        "TWIN_FUNCTION_ARN": spec.arn,
        "TWIN_LAYER_PATHS": os.pathsep.join(str(p) for p in spec.layer_dirs),
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(spec.environment)
    return env


def mapping_concurrency(stack: Stack) -> dict[str, int]:
    """Concurrent invocations each function's Kinesis mappings can make: ParallelizationFactor
    batches per shard ("concurrent batches per shard", up to PF x shards in AWS:
    https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html), summed over
    the function's mappings, capped at :data:`MAX_CONCURRENCY` processes on one machine."""
    shards = {r.ref: stream_shard_count(r.properties)
              for r in stack.of_type("AWS::Kinesis::Stream")}
    stream_of_consumer = {r.ref: str(r.properties.get("StreamARN", ""))
                          for r in stack.of_type("AWS::Kinesis::StreamConsumer")}
    stream_names = {r.attributes.get("Arn", ""): r.ref for r in stack.of_type("AWS::Kinesis::Stream")}
    wanted: dict[str, int] = {}
    for res in stack.of_type("AWS::Lambda::EventSourceMapping"):
        p = res.properties
        source = str(p.get("EventSourceArn", ""))
        stream_arn = stream_of_consumer.get(source, source)
        count = shards.get(stream_names.get(stream_arn, ""), 1)
        function = str(p.get("FunctionName", "")).rsplit(":function:", 1)[-1]
        factor = int(p.get("ParallelizationFactor", 1))
        wanted[function] = wanted.get(function, 0) + factor * count
    return {name: max(DEFAULT_CONCURRENCY, min(MAX_CONCURRENCY, n)) for name, n in wanted.items()}


def function_label(res: Any) -> str:
    """What a person calls a function: its service name (``echo``, from the consumer's
    ``POWERTOOLS_SERVICE_NAME``), else its construct path without the stack and the trailing
    ``Function/Resource`` (``ConnectAuthorization``), else its logical id."""
    variables = res.properties.get("Environment", {}).get("Variables", {})
    service = variables.get("POWERTOOLS_SERVICE_NAME")
    if isinstance(service, str) and service:
        return _file_safe(service)
    path = str(res.metadata.get("aws:cdk:path", "")).split("/")[1:]
    while path and path[-1] in ("Resource", "Function"):
        path.pop()
    return _file_safe("-".join(path) or res.logical_id)


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def function_specs(stack: Stack, *, connections_url: str) -> list[FunctionSpec]:
    """Every ``AWS::Lambda::Function`` with a local code asset and a Python handler; their
    @connections endpoint is ``connections_url`` (the twin's gateway)."""
    layers = {r.ref: stack.asset_path(r.logical_id) for r in
              stack.of_type("AWS::Lambda::LayerVersion")}
    concurrency = mapping_concurrency(stack)
    specs = []
    for res in stack.of_type("AWS::Lambda::Function"):
        p = res.properties
        code = stack.asset_path(res.logical_id)
        if code is None or not str(p.get("Runtime", "python")).startswith("python"):
            continue  # inline code, custom-resource providers, other runtimes: not run locally
        layer_dirs = tuple(
            path / "python" for arn in p.get("Layers", []) if (path := layers.get(arn))
        )
        variables = p.get("Environment", {}).get("Variables", {})
        specs.append(FunctionSpec(
            name=res.ref, arn=res.attributes["Arn"], handler=str(p.get("Handler", "")),
            code_dir=code, layer_dirs=layer_dirs,
            environment=rewrite_environment(variables, connections_url=connections_url),
            timeout_s=float(p.get("Timeout", 3)), memory_mb=int(p.get("MemorySize", 128)),
            max_concurrency=concurrency.get(res.ref, DEFAULT_CONCURRENCY),
            label=function_label(res),
        ))
    labels = [spec.label for spec in specs]
    # functions that would share a log file keep their physical names instead
    return [s if labels.count(s.label) == 1 else replace(s, label=s.name) for s in specs]


class _Process:
    """One worker process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.init_error: dict[str, Any] | None = None  # the handler failed to load
        self.generation = 0  # the pool's code generation it was spawned with (hot reload)

    @classmethod
    async def spawn(cls, spec: FunctionSpec, aws_url: str) -> _Process:
        log: int | None = None
        if spec.log_file is not None:  # like CloudWatch Logs: one stream per function
            spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            log = os.open(spec.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-X", "utf8", str(WORKER_SCRIPT),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                env=worker_environment(spec, aws_url), cwd=str(spec.code_dir),
            )
        finally:
            if log is not None:
                os.close(log)
        worker = cls(proc)
        try:  # Lambda's init phase has its own 10 s limit, outside the function timeout
            ready = await asyncio.wait_for(worker.receive(), INIT_TIMEOUT_S)
            worker.init_error = ready.get("initError")
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            status = await worker.kill()
            raise WorkerError(
                f"{spec.name}: worker failed to initialize ({_exit_text(status)})"
            ) from exc
        except asyncio.CancelledError:  # the caller went away during init: no orphan
            worker.signal_kill()
            raise
        return worker

    async def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        header = await self.proc.stdout.readexactly(_HEADER.size)
        body = await self.proc.stdout.readexactly(_HEADER.unpack(header)[0])
        reply: dict[str, Any] = orjson.loads(body)
        return reply

    async def call(self, request: bytes) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(_HEADER.pack(len(request)) + request)
        await self.proc.stdin.drain()
        return await self.receive()

    async def reap(self, grace_s: float = 2.0) -> int:
        """The exit status of a worker whose pipe closed (killed if it lingers)."""
        try:
            return await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            return await self.kill()

    def signal_kill(self) -> None:
        """SIGKILL without waiting (safe in a cancelled task); :meth:`kill` reaps it later."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def kill(self) -> int:
        self.signal_kill()
        return await self.proc.wait()

    async def close(self, grace_s: float = 2.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()  # EOF: the worker returns from its loop
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            await self.kill()


class FunctionPool:
    """Warm workers of one function; at most ``max_concurrency`` invocations at once."""

    def __init__(self, spec: FunctionSpec, aws_url: str, max_concurrency: int | None = None) -> None:
        self.spec = spec
        self._aws_url = aws_url
        self._idle: list[_Process] = []
        self._killed: set[_Process] = set()  # killed by a cancelled invocation, not yet reaped
        self._retired: set[_Process] = set()  # told to exit after a reload, not yet reaped
        self._reported: tuple[Any, Any] | None = None  # the init error last printed
        self.generation = 0  # bumped by :meth:`reload`: older workers are not reused
        self._busy = 0
        self.max_concurrency = max_concurrency or spec.max_concurrency
        self._own_concurrency = max_concurrency is None  # the spec's: a reload may change it
        self._slots = asyncio.Semaphore(self.max_concurrency)

    async def warm(self) -> None:
        """Start one worker ahead of the first invocation (imports happen now, not then)."""
        if not self._idle:
            self._idle.append(await self._spawn())

    async def reload(self, code_dir: Path | None = None, spec: FunctionSpec | None = None) -> None:
        """Run new code (or a new *spec*: environment, timeout...) from the next invocation on
        (hot reload): idle workers stop now, busy ones after their invocation, and one new
        worker imports the code at once, so an import error is reported at the reload rather
        than at the next frame."""
        if spec is not None:
            if spec.max_concurrency != self.spec.max_concurrency and self._own_concurrency:
                self.max_concurrency = spec.max_concurrency
                self._slots = asyncio.Semaphore(self.max_concurrency)
            self.spec = spec
        if code_dir is not None:
            self.spec = replace(self.spec, code_dir=code_dir)
        self.generation += 1
        self._reported = None
        idle, self._idle = self._idle, []
        await asyncio.gather(*(w.close() for w in idle))
        try:
            await self.warm()
        except WorkerError as exc:
            log.error("%s: %s", self.spec.log_name, exc)

    async def _spawn(self) -> _Process:
        generation = self.generation
        worker = await _Process.spawn(self.spec, self._aws_url)
        worker.generation = generation
        error = worker.init_error
        key = None if error is None else (error.get("errorType"), error.get("errorMessage"))
        if key is not None and key != self._reported:  # once per code generation, not per worker
            log.error("%s", init_error_line(self.spec, error or {}))
        self._reported = key
        return worker

    def _release(self, worker: _Process) -> None:
        if worker.generation == self.generation:
            self._idle.append(worker)
            return
        if worker.proc.stdin is not None and not worker.proc.stdin.is_closing():
            worker.proc.stdin.close()  # EOF: it exits; reaped by close()
        self._retired.add(worker)

    async def invoke(self, event: Any) -> InvokeResult:
        async with self._slots:
            request_id = str(uuid.uuid4())
            try:
                worker = self._idle.pop() if self._idle else await self._spawn()
            except WorkerError as exc:  # init failed or timed out: a function error, as Lambda
                return _failure("Runtime.ExitError", f"RequestId: {request_id} Error: {exc}")
            deadline_ms = int((time.time() + self.spec.timeout_s) * 1000)
            try:  # keys that are str subclasses (multidict's istr) or ints, as json.dumps allows
                request = orjson.dumps({"event": event, "requestId": request_id,
                                        "deadlineMs": deadline_ms},
                                       option=orjson.OPT_NON_STR_KEYS)
            except TypeError as exc:
                self._release(worker)
                return _failure("InvalidRequestContentException",
                                f"Could not parse request body into json: {exc}")
            try:
                async with asyncio.timeout(self.spec.timeout_s):  # no Task per invocation
                    reply = await worker.call(request)
            except TimeoutError:
                await worker.kill()
                return _failure("Sandbox.Timedout",
                                f"{request_id} Task timed out after {self.spec.timeout_s:.2f} "
                                "seconds")
            except asyncio.CancelledError:
                # The caller (an ESM runner stopping) went away mid-request: the worker is in an
                # unknown state and cannot be reused, and must not run on unowned.
                worker.signal_kill()
                self._killed.add(worker)
                raise
            except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
                status = await worker.reap()
                return _failure("Runtime.ExitError",
                                f"RequestId: {request_id} Error: Runtime exited with error: "
                                f"{_exit_text(status)}")
            self._release(worker)
        if reply.get("ok"):
            return InvokeResult(ok=True, payload=reply.get("payload"))
        error = reply.get("error") or {}
        return InvokeResult(ok=False, payload=error, error_type=error.get("errorType"),
                            error_message=error.get("errorMessage"))

    async def close(self) -> None:
        self.generation += 1  # a worker still busy (a gateway invocation) exits when released
        idle, self._idle = self._idle, []
        killed, self._killed = self._killed, set()
        retired, self._retired = self._retired, set()
        await asyncio.gather(*(w.close() for w in (*idle, *retired)), *(w.kill() for w in killed))


def init_error_line(spec: FunctionSpec, error: Mapping[str, Any]) -> str:
    """The one console line of a function whose handler fails to load: its name, AWS's error
    type, the file and line, the message, and where the traceback is."""
    where = error.get("location") or {}
    file, line = where.get("file"), where.get("line")
    place = f"{display_path(file)}{f':{line}' if line else ''}: " if file else ""
    logs = f" (traceback in {display_path(str(spec.log_file))})" if spec.log_file else ""
    return (f"{spec.log_name}: {error.get('errorType')}: {place}"
            f"{error.get('errorMessage')}{logs}")


def display_path(path: str) -> str:
    """*path* relative to the working directory when it is under it (what a person types)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _exit_text(status: int) -> str:
    """Lambda's wording, Go's ``ProcessState.String()``: "exit status 1", "signal: killed"."""
    if status >= 0:
        return f"exit status {status}"
    try:  # glibc's descriptions, lowercased, are Go's signal names ("Killed" -> "killed")
        name = signal.strsignal(-status)
    except ValueError:
        name = None
    return f"signal: {name.lower() if name else -status}"


def _failure(error_type: str, message: str) -> InvokeResult:
    payload = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
    return InvokeResult(ok=False, payload=payload, error_type=error_type, error_message=message)


class Workers:
    """Every function of the stack, invocable by name or ARN (the ESM engine's ``Invoker``)."""

    def __init__(
        self, specs: list[FunctionSpec], aws_url: str, *, max_concurrency: int | None = None
    ) -> None:
        self._pools: dict[str, FunctionPool] = {}
        self._aws_url, self._max_concurrency = aws_url, max_concurrency
        for spec in specs:
            self._register(spec)

    def _register(self, spec: FunctionSpec) -> FunctionPool:
        pool = FunctionPool(spec, self._aws_url, self._max_concurrency)
        self._pools[spec.name] = pool
        self._pools[spec.arn] = pool
        return pool

    @property
    def specs(self) -> list[FunctionSpec]:
        """Every function's current spec, in template order."""
        return [pool.spec for pool in dict.fromkeys(self._pools.values())]

    @property
    def log_names(self) -> list[str]:
        """Each function's :attr:`FunctionSpec.log_name`, in template order."""
        return list(dict.fromkeys(pool.spec.log_name for pool in self._pools.values()))

    def pool(self, function: str) -> FunctionPool:
        # a qualified ARN (":$LATEST") or a bare name both select the function
        key = function.removesuffix(":$LATEST")
        try:
            return self._pools[key]
        except KeyError:
            raise WorkerError(f"Function not found: {function}") from None

    async def start(self) -> None:
        """Warm one worker per function, concurrently. A worker that fails to start is only
        logged: the next invocation spawns again and reports the failure as Lambda would."""
        pools = list(dict.fromkeys(self._pools.values()))
        results = await asyncio.gather(*(p.warm() for p in pools), return_exceptions=True)
        for pool, result in zip(pools, results, strict=True):
            if isinstance(result, Exception):
                log.warning("%s: warm-up failed: %s", pool.spec.name, result)

    async def reload(self, function: str, code_dir: Path | None = None) -> None:
        """Hot reload: the function's next invocation runs the code now in its folder."""
        await self.pool(function).reload(code_dir)

    async def add(self, spec: FunctionSpec) -> None:
        """A function the running stack gained (a new consumer): its pool, one worker warm."""
        pool = self._register(spec)
        try:
            await pool.warm()
        except WorkerError as exc:  # as at start: the next invocation reports it as Lambda
            log.warning("%s: warm-up failed: %s", spec.name, exc)

    async def update(self, spec: FunctionSpec) -> None:
        """A function whose configuration changed: the next invocation runs with *spec*."""
        await self.pool(spec.name).reload(spec=spec)

    async def remove(self, function: str) -> None:
        """A function the running stack lost: its pool's processes are stopped."""
        pool = self.pool(function)
        self._pools.pop(pool.spec.name, None)
        self._pools.pop(pool.spec.arn, None)
        await pool.close()

    async def invoke(self, function_name: str, event: dict[str, Any]) -> InvokeResult:
        """Invoke synchronously (RequestResponse); function errors come back in the result."""
        return await self.pool(function_name).invoke(event)

    async def stop(self) -> None:
        await asyncio.gather(*(p.close() for p in dict.fromkeys(self._pools.values())))
