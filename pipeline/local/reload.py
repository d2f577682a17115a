"""Hot reload: a consumer's functions run the code in ``consumers/<name>/``, re-imported when it
changes, without restarting the twin (its stream, roster and queues are untouched).

What SAM's warm containers and serverless-offline do for handlers: the function runs from its
source folder (so tracebacks name ``consumers/<name>/handler.py``, not ``cdk.out/asset.<hash>/``)
and a change to any of its files makes its next invocation run the new code
(:meth:`pipeline.local.workers.FunctionPool.reload`). The asset is a copy of that folder
(``Code.from_asset(consumers/<name>)``), so before any edit both run the same code.

A change to ``settings.json`` or a consumer folder added or removed changes the template
(routes, mappings, functions): the twin re-synthesizes in the background and applies it in
place (:mod:`pipeline.local.reconfigure`), given ``on_template_change``, and then tells the
reloader which folders to watch (:meth:`Reloader.watch`); without it (a consumers folder the
synth does not read) it is reported, not applied (restart the twin).

The core is pure (:func:`snapshot` of a folder, :func:`changes` between two snapshots); the
:class:`Reloader` polls it on a timer: no file-watching dependency, and a save by any editor
(write in place, or write-and-rename) is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.registry import CONSUMER_FILES

log = logging.getLogger(__name__)

POLL_S = 0.25  # a save is live well within the ~2 s a person waits
SETTINGS = "settings.json"
_SKIPPED_DIRS = ("__pycache__",)

Snapshot = Mapping[str, tuple[int, int]]  # file (relative) -> (mtime_ns, size)


class Reloadable(Protocol):
    async def reload(self, function: str, code_dir: Path | None = None) -> None: ...


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under *folder* (no bytecode, no hidden files) with its mtime and size."""
    out: dict[str, tuple[int, int]] = {}
    if not folder.is_dir():
        return out
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in rel.parts) or path.suffix == ".pyc":
            continue
        with contextlib.suppress(OSError):  # removed while walking: the next poll sees it
            if path.is_file():
                st = path.stat()
                out[rel.as_posix()] = (st.st_mtime_ns, st.st_size)
    return out


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """The files added, removed or modified between two snapshots, sorted."""
    return sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))


def consumer_names(consumers_dir: Path) -> frozenset[str]:
    """The folders that are consumers (both files present; see ``pipeline.registry``)."""
    if not consumers_dir.is_dir():
        return frozenset()
    return frozenset(p.name for p in consumers_dir.iterdir() if p.is_dir()
                     and not p.name.startswith(".")
                     and all((p / f).is_file() for f in CONSUMER_FILES))


@dataclass(frozen=True)
class SourceFolder:
    """A function whose code asset was made from a consumer folder."""

    function: str  # the workers' key (physical name)
    consumer: str  # consumers/<consumer>/
    path: Path


def source_folders(functions: Iterable[tuple[str, str]], consumers_dir: Path
                   ) -> dict[str, SourceFolder]:
    """``(function, label)`` pairs -> the consumer folder each runs from, for the labels that
    name a consumer folder (others, like the authorizer, keep their asset)."""
    present = consumer_names(consumers_dir)
    return {function: SourceFolder(function, label, (consumers_dir / label).resolve())
            for function, label in functions if label in present}


class Reloader:
    """Polls the consumer folders; reloads a function when its files change."""

    def __init__(self, workers: Reloadable, folders: Mapping[str, SourceFolder],
                 consumers_dir: Path, *, say: Callable[[str], None] | None = None,
                 poll_s: float = POLL_S,
                 on_template_change: Callable[[str], None] | None = None) -> None:
        self._workers = workers
        self._on_template_change = on_template_change
        self._folders = dict(folders)
        self._consumers_dir = consumers_dir
        self._say = say or (lambda line: print(line, flush=True))
        self._poll_s = poll_s
        self._seen: dict[str, dict[str, tuple[int, int]]] = {}
        self._names: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._seen, self._names = await asyncio.to_thread(self._scan)
        self._task = asyncio.create_task(self._loop(), name="hot-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def watch(self, folders: Mapping[str, SourceFolder]) -> None:
        """The functions to watch after a reload added or removed one; a new one's files as
        they are now count as seen (its pool just imported them)."""
        for function, folder in folders.items():
            if function not in self._folders:
                self._seen[function] = snapshot(folder.path)
        for function in self._folders.keys() - folders.keys():
            self._seen.pop(function, None)
        self._folders = dict(folders)

    def _scan(self) -> tuple[dict[str, dict[str, tuple[int, int]]], frozenset[str]]:
        return ({f: snapshot(s.path) for f, s in self._folders.items()},
                consumer_names(self._consumers_dir))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.check()
            except Exception:  # a reload must never take the twin down
                log.exception("hot reload failed")

    async def check(self) -> None:
        """One poll: reload what changed; a template change re-synthesizes (or is reported)."""
        seen, names = await asyncio.to_thread(self._scan)
        # watch() may have changed the folders during the scan: the next poll scans those
        seen = {f: seen.get(f, self._seen.get(f, {})) for f in self._folders}
        template: list[str] = []
        for function, folder in list(self._folders.items()):
            changed = changes(self._seen.get(function, {}), seen[function])
            if not changed or folder.consumer not in names:
                continue  # a folder that is no consumer any more: reported as removed below
            rel = _shown(folder.path)
            if SETTINGS in changed and self._on_template_change is not None:
                template.append(f"{rel}/{SETTINGS} changed")
            elif SETTINGS in changed:
                self._say(f"reload: {rel}/{SETTINGS} changed: routes, batching and filters "
                          "apply after a restart of the twin (it re-synthesizes)")
            code = [f for f in changed if f != SETTINGS]
            if code:
                try:
                    await self._workers.reload(function, folder.path)
                except Exception:  # one function's failure must not hide the others' changes
                    log.exception("hot reload of %s failed", folder.consumer)
                    continue
                self._say(f"reload: {folder.consumer} reloaded "
                          f"({', '.join(f'{rel}/{f}' for f in code)})")
        if self._on_template_change is not None:
            template += [f"new consumer {n}" for n in sorted(names - self._names)]
            template += [f"consumer {n} removed" for n in sorted(self._names - names)]
        else:
            for added in sorted(names - self._names):
                self._say(f"reload: new consumer {added}: restart the twin to deploy it")
            for removed in sorted(self._names - names):
                self._say(f"reload: consumer {removed} removed: restart the twin to undeploy it")
        # ... or during the reloads above
        self._seen = {f: seen.get(f, self._seen.get(f, {})) for f in self._folders}
        self._names = names
        if template:
            assert self._on_template_change is not None
            self._on_template_change("; ".join(template))


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
