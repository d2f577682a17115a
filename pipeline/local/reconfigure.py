"""A re-synthesized template applied to a running twin, as a stack update would apply it.

A changed ``consumers/<name>/settings.json`` (routes, batching, filter) or a removed consumer
changes the template; :func:`plan` compares the running stack with the new one (pure, no I/O)
and says what changes in place: the gateway's routes, and each event source mapping added,
removed, updated or replaced. What CloudFormation would update in place keeps the mapping's
position (``UpdateEventSourceMapping``); a new or replaced mapping starts from its
``StartingPosition`` (``LATEST`` for the consumers here), as on AWS. Streams, tables, queues and
their contents are never touched. A template that needs resources the twin does not run yet (a
new consumer's function, stream consumer and queue) is not applied: :attr:`Reconfiguration.restart`
says why, and the twin says to restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.local.cfn import Stack
from pipeline.local.errors import TwinError
from pipeline.local.esm import MappingConfig

MAPPING = "AWS::Lambda::EventSourceMapping"
# What a running twin cannot create in place (provisioned and started once, at start-up).
PROVISIONED = ("AWS::Lambda::Function", "AWS::Kinesis::Stream", "AWS::Kinesis::StreamConsumer",
               "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::SecretsManager::Secret")
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
    restart: tuple[str, ...] = ()  # resources only a restart creates (not applied)

    @property
    def empty(self) -> bool:
        return not (self.routes_added or self.routes_removed or self.added or self.updated
                    or self.replaced or self.removed)

    def summary(self) -> str:
        """One line for the console."""
        parts = []
        if self.routes_added:
            parts.append("routes added " + ", ".join(self.routes_added))
        if self.routes_removed:
            parts.append("routes removed " + ", ".join(self.routes_removed))
        for word, changes in (("added", self.added), ("updated", self.updated),
                              ("replaced (from StartingPosition)", self.replaced)):
            if changes:
                parts.append(f"mappings {word} " + ", ".join(_name(c.config) for c in changes))
        if self.removed:
            parts.append("mappings removed " + ", ".join(self.removed))
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
    )


def changed_fields(old: MappingConfig, new: MappingConfig) -> list[str]:
    """The settings that differ (for the console line)."""
    return [f.name for f in dataclasses.fields(MappingConfig)
            if getattr(old, f.name) != getattr(new, f.name)]


def _name(config: MappingConfig) -> str:
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
