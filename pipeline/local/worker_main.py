"""One warm Lambda "container": loads a handler once, then serves invocations over a pipe.

Run as a script (``python worker_main.py``), never as ``-m pipeline...``: the function must see
its own code and layer, not the twin's source tree. Framing on stdin/stdout: 4-byte big-endian
length + an orjson document. Request ``{"event", "requestId", "deadlineMs"}``; reply
``{"ok": true, "payload"}`` or ``{"ok": false, "error": {"errorMessage", "errorType",
"stackTrace"}}``. The handler's own stdout goes to stderr, so prints never corrupt the pipe.

sys.path: the function's asset first, then the host interpreter's site-packages, then the
layer's ``python/``. The layer's native wheels are built for arm64 (Lambda's architecture) and
cannot load on an x86_64 host, so the host's builds of the same distributions win; pure-Python
layer content (the ``pipeline.runtime`` package) comes from the layer as deployed.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")


class LambdaContext:
    """The subset of the Lambda context object handlers use."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("TWIN_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphans if the twin dies
        except OSError:
            pass


def _set_path() -> None:
    code_dir = os.environ["LAMBDA_TASK_ROOT"]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]
    sys.path.insert(0, code_dir)
    for layer in filter(None, os.environ.get("TWIN_LAYER_PATHS", "").split(os.pathsep)):
        sys.path.append(layer)


def _load_handler() -> tuple[Any, dict[str, Any] | None]:
    spec = os.environ.get("_HANDLER", "")
    module_name, _, func_name = spec.rpartition(".")
    if not module_name:
        err: dict[str, Any] = {
            "errorMessage": f"Bad handler '{spec}': not enough values to unpack",
            "errorType": "Runtime.MalformedHandlerName", "stackTrace": []}
        log_init_error(err, None)
        return None, err
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:
        err = init_error(exc, module_name)
        log_init_error(err, exc)
        return None, err
    handler = getattr(module, func_name, None)
    if handler is None:
        err = {"errorMessage": f"Handler '{func_name}' missing on module '{module_name}'",
               "errorType": "Runtime.HandlerNotFound", "stackTrace": [],
               "location": {"file": getattr(module, "__file__", None), "line": None}}
        log_init_error(err, None)
        return None, err
    return handler, None


def init_error(exc: Exception, module_name: str) -> dict[str, Any]:
    """What the Python runtime (awslambdaric's ``_get_handler``) answers for a module that fails
    to import: ``Runtime.ImportModuleError`` for an ImportError, ``Runtime.UserCodeSyntaxError``
    for a SyntaxError, any other exception under its own name. ``location`` (the twin's, not
    AWS's) is the file and line in the function's own code, for the console line."""
    if isinstance(exc, SyntaxError):
        err = _error(exc, "Runtime.UserCodeSyntaxError")
        err["errorMessage"] = f"Syntax error in module '{module_name}': {exc}"
        err["stackTrace"] = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        where: tuple[str | None, int | None] = (exc.filename, exc.lineno)
    else:
        err = _error(exc, "Runtime.ImportModuleError" if isinstance(exc, ImportError) else None)
        if isinstance(exc, ImportError):
            err["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
        where = _user_frame(exc)
    err["location"] = {"file": where[0], "line": where[1]}
    return err


def _user_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost frame of the traceback in the function's code (else the innermost one)."""
    root = os.path.abspath(os.environ.get("LAMBDA_TASK_ROOT", "."))
    frames: list[tuple[str | None, int | None]] = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen")]
    ours = [f for f in frames if os.path.abspath(f[0] or "").startswith(root + os.sep)]
    return (ours or frames or [(None, None)])[-1]


def log_init_error(err: dict[str, Any], exc: BaseException | None) -> None:
    """The function's log, as CloudWatch shows an init failure: ``[ERROR] type: message`` and
    the traceback (the Lambda runtime's format)."""
    lines = [f"[ERROR] {err['errorType']}: {err['errorMessage']}"]
    if exc is not None:
        lines.append("".join(traceback.format_exception(exc)).rstrip())
    print("\n".join(lines), file=sys.stderr, flush=True)


def _read(stream: BinaryIO, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    import orjson

    handler, init_error = _load_handler()
    # the init error rides on the ready message too: the twin prints one console line for it
    ready = orjson.dumps({"ready": True, "initError": init_error})
    out.write(_HEADER.pack(len(ready)) + ready)  # init done (or failed): accept invocations
    out.flush()
    while True:
        header = _read(inp, _HEADER.size)
        if header is None:
            return  # the twin closed the pipe: shut down
        body = _read(inp, _HEADER.unpack(header)[0])
        if body is None:
            return
        request = orjson.loads(body)
        if init_error is not None:  # AWS's shape: without the twin's location
            reply: dict[str, Any] = {"ok": False, "error": {
                k: v for k, v in init_error.items() if k != "location"}}
        else:
            ctx = LambdaContext(request["requestId"], int(request["deadlineMs"]))
            try:
                result = handler(request["event"], ctx)
                reply = {"ok": True, "payload": result}
            except Exception as exc:
                reply = {"ok": False, "error": _error(exc)}
        try:
            data = orjson.dumps(reply, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            data = orjson.dumps({"ok": False, "error": {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError", "stackTrace": []}})
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()


def main() -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the twin, which stops us
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # the handler's prints go to stderr
    sys.stdout = os.fdopen(1, "w", buffering=1)
    _set_path()
    serve(sys.stdin.buffer, protocol_out)


if __name__ == "__main__":
    main()
