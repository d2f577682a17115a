"""A re-synthesized template applied to a running twin, as a stack update would apply it.

A changed ``consumers/<name>/settings.json`` (routes, batching, filter, environment), or a
consumer folder added or removed, changes the template; :func:`plan` compares the running stack
with the new one (pure, no I/O) and says what changes in place: the gateway's routes; each event
source mapping added, removed, updated or replaced; a new consumer's function, stream consumer
and on-failure queue created, a removed one's function and stream consumer deleted.
:func:`function_changes` compares the functions as the workers run them (environment, code,
timeout, memory...). What CloudFormation would update in place keeps the mapping's
position (``UpdateEventSourceMapping``); a new or replaced mapping starts from its
``StartingPosition`` (``LATEST`` for the consumers here), as on AWS. Streams, tables, queues and
their contents are never touched (a removed consumer's queue is kept, with what redrive reads).
A template that needs a stream, table or secret the twin does not run is not applied:
:attr:`Reconfiguration.restart` says why, and the twin says to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.local.cfn import Stack
from pipeline.local.errors import TwinError
from pipeline.local.esm import MappingConfig
from pipeline.local.workers import FunctionSpec

if TYPE_CHECKING:
    from pipeline.local.services import AwsServices

MAPPING = "AWS::Lambda::EventSourceMapping"
FUNCTION = "AWS::Lambda::Function"
STREAM_CONSUMER = "AWS::Kinesis::StreamConsumer"
# What a consumer brings and takes away: created (and deleted) in a running twin.
IN_PLACE = (FUNCTION, STREAM_CONSUMER, "AWS::SQS::Queue")
# What a running twin cannot create in place (provisioned once, at start-up).
PROVISIONED = ("AWS::Kinesis::Stream", "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable",
               "AWS::SecretsManager::Secret")
# A change of these makes CloudFormation replace the mapping (or the twin rebuild its readers).
_REPLACED_BY = ("function_name", "event_source_arn", "starting_position",
                "starting_position_timestamp", "parallelization_factor", "enabled")


@dataclass(frozen=True)
class MappingChange:
    logical_id: str
    config: MappingConfig
    role: str | None  # the function's role: the identity the mapping invokes with


@dataclass(frozen=True)
class Reconfiguration:
    """What applying a new template to the running twin does."""

    routes_added: tuple[str, ...] = ()
    routes_removed: tuple[str, ...] = ()
    added: tuple[MappingChange, ...] = ()
    updated: tuple[MappingChange, ...] = ()  # in place: positions and in-flight batches kept
    replaced: tuple[MappingChange, ...] = ()  # stopped, then started at StartingPosition
    removed: tuple[str, ...] = ()  # logical ids
    created: tuple[str, ...] = ()  # logical ids of new functions, stream consumers, queues
    deleted: tuple[str, ...] = ()  # logical ids of functions and stream consumers gone
    restart: tuple[str, ...] = ()  # resources only a restart creates (not applied)

    @property
    def empty(self) -> bool:
        return not (self.routes_added or self.routes_removed or self.added or self.updated
                    or self.replaced or self.removed or self.created or self.deleted)

    def summary(self, labels: Mapping[str, str] | None = None) -> str:
        """One line for the console; *labels*: what a person calls a function (by physical
        name) or a removed mapping (by logical id), e.g. ``echo``."""
        named = labels or {}
        parts = []
        if self.routes_added:
            parts.append("routes added " + ", ".join(self.routes_added))
        if self.routes_removed:
            parts.append("routes removed " + ", ".join(self.routes_removed))
        for word, changes in (("added", self.added), ("updated", self.updated),
                              ("replaced (from StartingPosition)", self.replaced)):
            if changes:
                parts.append(f"mappings {word} " + ", ".join(
                    named.get(function_of(c.config), function_of(c.config)) for c in changes))
        if self.removed:
            parts.append("mappings removed " + ", ".join(named.get(r, r) for r in self.removed))
        return "; ".join(parts) or "no change to routes or mappings"


def mapping_configs(stack: Stack) -> dict[str, MappingChange]:
    """The stack's event source mappings by logical id."""
    roles = {f.ref: f.properties.get("Role") for f in stack.of_type("AWS::Lambda::Function")}
    out: dict[str, MappingChange] = {}
    for res in stack.of_type(MAPPING):
        role = roles.get(str(res.properties.get("FunctionName")))
        out[res.logical_id] = MappingChange(
            res.logical_id, MappingConfig.from_cfn(res.properties, logical_id=res.logical_id),
            str(role) if role else None)
    return out


def plan(running: Stack, new: Stack, running_routes: tuple[str, ...],
         new_routes: tuple[str, ...]) -> Reconfiguration:
    """What changes between the *running* stack and the *new* one (raises what
    :meth:`MappingConfig.from_cfn` raises for a mapping Lambda would refuse)."""
    restart = tuple(sorted(
        f"{res.type} {lid}" for lid, res in new.resources.items()
        if res.type in PROVISIONED and lid not in running.resources))
    if restart:
        return Reconfiguration(restart=restart)
    created = tuple(sorted(lid for lid, res in new.resources.items()
                           if res.type in IN_PLACE and lid not in running.resources))
    deleted = tuple(sorted(lid for lid, res in running.resources.items()
                           if res.type in (FUNCTION, STREAM_CONSUMER)
                           and lid not in new.resources))
    before, after = mapping_configs(running), mapping_configs(new)
    updated, replaced = [], []
    for lid in sorted(before.keys() & after.keys()):
        old, change = before[lid].config, after[lid]
        if old == change.config:
            continue
        if any(getattr(old, f) != getattr(change.config, f) for f in _REPLACED_BY):
            replaced.append(change)
        else:
            updated.append(change)
    return Reconfiguration(
        routes_added=tuple(r for r in new_routes if r not in running_routes),
        routes_removed=tuple(r for r in running_routes if r not in new_routes),
        added=tuple(after[lid] for lid in sorted(after.keys() - before.keys())),
        updated=tuple(updated), replaced=tuple(replaced),
        removed=tuple(sorted(before.keys() - after.keys())),
        created=created, deleted=deleted,
    )


@dataclass(frozen=True)
class FunctionChanges:
    """The functions to start, stop and restart with a new configuration."""

    added: tuple[FunctionSpec, ...] = ()
    removed: tuple[FunctionSpec, ...] = ()
    updated: tuple[tuple[FunctionSpec, tuple[str, ...]], ...] = ()  # (new spec, what changed)

    def summary(self) -> str:
        """The console's words for them ('' when nothing changed)."""
        parts = []
        if self.added:
            parts.append("functions added " + ", ".join(s.log_name for s in self.added))
        if self.removed:
            parts.append("functions removed " + ", ".join(s.log_name for s in self.removed))
        if self.updated:
            parts.append("functions updated " + ", ".join(
                f"{s.log_name} ({', '.join(what)})" for s, what in self.updated))
        return "; ".join(parts)


_COMPARED = {"handler": "handler", "environment": "environment", "timeout_s": "timeout",
             "memory_mb": "memory", "max_concurrency": "concurrency", "code_dir": "code",
             "layer_dirs": "layers"}


def function_changes(running: Sequence[FunctionSpec], new: Sequence[FunctionSpec],
                     running_assembly: Path, new_assembly: Path) -> FunctionChanges:
    """The functions added, removed or configured differently (an asset with the same content
    in the new assembly is the same code)."""
    before, after = {s.name: s for s in running}, {s.name: s for s in new}
    updated = []
    for name in sorted(before.keys() & after.keys()):
        old, spec = before[name], after[name]
        what = tuple(word for attr, word in _COMPARED.items()
                     if _comparable(getattr(old, attr), running_assembly)
                     != _comparable(getattr(spec, attr), new_assembly))
        if what:
            updated.append((spec, what))
    return FunctionChanges(
        added=tuple(after[n] for n in sorted(after.keys() - before.keys())),
        removed=tuple(before[n] for n in sorted(before.keys() - after.keys())),
        updated=tuple(updated))


def _comparable(value: Any, assembly: Path) -> Any:
    """A path inside *assembly* as its path relative to it (``asset.<hash>/...``)."""
    if isinstance(value, tuple):
        return tuple(_comparable(v, assembly) for v in value)
    if isinstance(value, Path) and value.is_relative_to(assembly):
        return value.relative_to(assembly)
    return value


async def create_in_place(services: AwsServices, stack: Stack,
                          change: Reconfiguration) -> None:
    """Provision a new consumer's stream consumer and queue, and wait until the stream
    consumer is ACTIVE (as the stack's waiter does) before a mapping reads through it."""
    from pipeline.local.provision import provision, wait_until_active

    await asyncio.to_thread(provision, services, stack, frozenset(change.created))
    consumers = [stack.resources[lid].ref for lid in change.created
                 if stack.resources[lid].type == STREAM_CONSUMER]
    if consumers:
        await asyncio.to_thread(wait_until_active, services.kinesis, consumers)


def delete_stream_consumers(services: AwsServices, running: Stack,
                            change: Reconfiguration) -> None:
    """Deregister a removed consumer's stream consumer (its mapping is stopped): a slot of the
    stream's 20 is free again, and the folder can come back under the same name."""
    for lid in change.deleted:
        res = running.resources[lid]
        if res.type == STREAM_CONSUMER:
            with contextlib.suppress(TwinError):  # already gone
                services.kinesis.deregister_stream_consumer(consumer_arn=res.ref)


def changed_fields(old: MappingConfig, new: MappingConfig) -> list[str]:
    """The settings that differ (for the console line)."""
    return [f.name for f in dataclasses.fields(MappingConfig)
            if getattr(old, f.name) != getattr(new, f.name)]


def function_of(config: MappingConfig) -> str:
    """The physical name of the function a mapping invokes."""
    return config.function_name.rsplit(":", 1)[-1]


_SYNTH = ("import json, sys; from pathlib import Path; "
          "from pipeline.infrastructure.synth import synthesize; "
          "synthesize(Path(sys.argv[1]), json.loads(sys.argv[2]))")


async def synthesize_in_background(project: Path, outdir: Path,
                                   context: Mapping[str, str]) -> None:
    """The app synthesized into *outdir* by a child process (the twin's loop keeps serving);
    raises :class:`ReconfigureError` with the synth's last lines when it fails."""
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22",
           "CDK_DISABLE_CLI_TELEMETRY": "true"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SYNTH, str(outdir), json.dumps(dict(context)), cwd=project,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        lines = out.decode(errors="replace").strip().splitlines()
        raise ReconfigureError(f"the synth failed (exit {proc.returncode}): "
                               + (lines[-1] if lines else "no output"))


class ReconfigureError(TwinError):
    """A re-synthesized template that could not be applied (the twin keeps running as it was)."""
