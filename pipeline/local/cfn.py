"""Resolve a synthesized CloudFormation template into the concrete resources the twin runs.

Sans-I/O apart from :func:`load_template`: intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
Fn::Select, Fn::Split, Fn::If and conditions, Fn::FindInMap, Fn::Base64), pseudo parameters, and
the Ref/GetAtt values CloudFormation documents per resource type
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference-ref.html).
Names are deterministic per (stack, logical id), so a restart reproduces them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.aws.limits import ACCOUNT_ID, PARTITION, REGION
from pipeline.local.cfn_types import (
    LOWER,
    NAME_PROPERTY,
    URL_SUFFIX,
    identity_for,
    token,
)
from pipeline.local.cfn_types import (
    generated_name as generated_name,  # re-exported: part of this module's API
)
from pipeline.local.errors import CfnError as CfnError  # re-exported: raised by this module

NO_VALUE = object()  # AWS::NoValue: the property is removed

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Resource:
    """One resolved resource: ``ref`` is what ``Ref`` returns, ``attributes`` what GetAtt does."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any]
    ref: str
    attributes: dict[str, str]
    # What CloudFormation creates first: DependsOn plus every Ref/Fn::GetAtt/Fn::Sub target.
    depends_on: tuple[str, ...] = ()


@dataclass
class Stack:
    """A resolved template: resources by logical id, outputs, and where assets live."""

    name: str
    assembly_dir: Path
    resources: dict[str, Resource]
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def creation_order(self) -> list[Resource]:
        """Every resource once, each after what it depends on; otherwise in template order
        (CloudFormation would create the independent ones in parallel)."""
        done: set[str] = set()
        order: list[Resource] = []

        def visit(lid: str, path: tuple[str, ...]) -> None:
            if lid in done or lid not in self.resources:
                return
            if lid in path:
                raise CfnError(f"circular dependency: {' -> '.join((*path, lid))}")
            for dep in self.resources[lid].depends_on:
                visit(dep, (*path, lid))
            done.add(lid)
            order.append(self.resources[lid])

        for lid in self.resources:
            visit(lid, ())
        return order

    def of_type(self, resource_type: str) -> list[Resource]:
        """Every resource of a type, in template order."""
        return [r for r in self.resources.values() if r.type == resource_type]

    def by_ref(self, resource_type: str, ref_or_arn: str) -> Resource | None:
        """The resource of a type whose Ref or any attribute equals ``ref_or_arn``."""
        for res in self.of_type(resource_type):
            if ref_or_arn == res.ref or ref_or_arn in res.attributes.values():
                return res
        return None

    def asset_path(self, logical_id: str) -> Path | None:
        """The local directory of a function's or layer's code asset.

        From the ``aws:asset:path`` metadata when CDK wrote it, else from the S3 object key
        (``<hash>.zip``) through the assembly's asset manifest or the ``asset.<hash>`` folder.
        """
        res = self.resources[logical_id]
        path = res.metadata.get("aws:asset:path")
        if isinstance(path, str):
            return (self.assembly_dir / path).resolve()
        code = res.properties.get("Code") or res.properties.get("Content") or {}
        key = code.get("S3Key") if isinstance(code, dict) else None
        if not isinstance(key, str):
            return None
        source = self._asset_sources().get(key)
        if source is None:
            source = "asset." + key.rsplit(".", 1)[0] if key.endswith(".zip") else None
        if source is None or not (self.assembly_dir / source).is_dir():
            return None
        return (self.assembly_dir / source).resolve()

    def _asset_sources(self) -> dict[str, str]:
        """objectKey -> source path, from ``<stack>.assets.json`` (empty if absent)."""
        try:
            manifest = json.loads((self.assembly_dir / f"{self.name}.assets.json").read_text())
        except (OSError, ValueError):
            return {}
        out: dict[str, str] = {}
        for entry in (manifest.get("files") or {}).values():
            src = (entry.get("source") or {}).get("path")
            for dest in (entry.get("destinations") or {}).values():
                if src and dest.get("objectKey"):
                    out[str(dest["objectKey"])] = str(src)
        return out



def load_template(assembly_dir: Path, stack_name: str) -> dict[str, Any]:
    """Read ``<assembly_dir>/<stack_name>.template.json``."""
    path = assembly_dir / f"{stack_name}.template.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CfnError(f"no template {path}: synthesize first (make synth)") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise CfnError(f"{path} is not a CloudFormation template")
    return data


class Resolver:
    """Evaluates intrinsics against one template; resource identities are computed lazily."""

    def __init__(
        self,
        template: Mapping[str, Any],
        stack_name: str,
        *,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
        parameters: Mapping[str, str] | None = None,
        created: int | None = None,
    ) -> None:
        self.template = template
        # When the stack is "created" (epoch seconds): the creation epoch AWS puts at the end of
        # a stream consumer's ARN; provisioning registers the consumers with it.
        self.created = int(time.time()) if created is None else created
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.raw: dict[str, Any] = dict(template.get("Resources", {}))
        self.parameters = dict(parameters or {})
        self._identity: dict[str, tuple[str, dict[str, str]]] = {}
        self._in_progress: set[str] = set()
        self._conditions: dict[str, bool] = {}
        self.warnings: list[str] = []

    # --- pseudo parameters and parameters ----------------------------------------------------
    def _pseudo(self, name: str) -> Any:
        values: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{self.region}:{self.account_id}:"
            f"stack/{self.stack_name}/{token(self.stack_name, '', 8, LOWER)}",
            "AWS::NoValue": NO_VALUE,
            "AWS::NotificationARNs": [],
        }
        if name not in values:
            raise CfnError(f"unknown pseudo parameter {name}")
        return values[name]

    def _parameter(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is None:
            raise CfnError(f"Ref to unknown logical id or parameter {name!r}")
        if "Default" not in spec:
            raise CfnError(f"parameter {name!r} has no Default and no value")
        return spec["Default"]

    # --- conditions ---------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise CfnError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    # --- identities ---------------------------------------------------------------------------
    def identity(self, logical_id: str) -> tuple[str, dict[str, str]]:
        """(Ref value, GetAtt attributes) of a resource."""
        if logical_id in self._identity:
            return self._identity[logical_id]
        if logical_id not in self.raw:
            raise CfnError(f"unknown logical id {logical_id!r}")
        if logical_id in self._in_progress:
            raise CfnError(f"circular reference through {logical_id!r}")
        self._in_progress.add(logical_id)
        try:
            spec = self.raw[logical_id]
            rtype = str(spec.get("Type", ""))
            props = spec.get("Properties", {}) or {}
            name_key = NAME_PROPERTY.get(rtype)
            name = self.resolve(props[name_key]) if name_key and name_key in props else None
            ident = identity_for(self, logical_id, rtype, props, name)
        finally:
            self._in_progress.discard(logical_id)
        self._identity[logical_id] = ident
        return ident

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        reg = self.region if region else ""
        return f"arn:{PARTITION}:{service}:{reg}:{self.account_id}:{resource}"

    # --- intrinsics ---------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic in ``value`` (dicts, lists and scalars)."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, arg)
        out: dict[str, Any] = {}
        for k, v in value.items():
            resolved = self.resolve(v)
            if resolved is not NO_VALUE:
                out[k] = resolved
        return out

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            if not isinstance(arg, str):
                raise CfnError(f"Ref needs a string, got {arg!r}")
            if arg.startswith("AWS::"):
                return self._pseudo(arg)
            if arg in self.raw:
                return self.identity(arg)[0]
            return self._parameter(arg)
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else self.resolve(arg)
            if not isinstance(parts, list) or len(parts) != 2:
                raise CfnError(f"malformed Fn::GetAtt {arg!r}")
            return self._get_att(str(parts[0]), str(parts[1]))
        if key == "Condition":
            return self.condition(str(arg))
        handler = _FUNCTIONS.get(key)
        if handler is None:
            raise CfnError(f"unsupported intrinsic {key}")
        return handler(self, arg)

    def _get_att(self, logical_id: str, attribute: str) -> str:
        ref, attrs = self.identity(logical_id)
        if attribute in attrs:
            return attrs[attribute]
        # An attribute the twin does not model: a stable placeholder, never a crash.
        self.warnings.append(
            f"Fn::GetAtt {logical_id}.{attribute}: not modelled for "
            f"{self.raw[logical_id].get('Type')} (known: {sorted(attrs)})"
        )
        return f"{ref}.{attribute}"

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} escapes
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.raw:
                lid, attr = name.split(".", 1)
                return self._get_att(lid, attr)
            return str(self._intrinsic("Ref", name))

        return _SUB_VAR.sub(replace, text)


def _fn_join(r: Resolver, arg: Any) -> str:
    sep, items = arg
    values = r.resolve(items)
    return str(sep).join(str(v) for v in values)


def _fn_sub(r: Resolver, arg: Any) -> str:
    if isinstance(arg, str):
        return r.sub(arg, {})
    text, variables = arg
    return r.sub(str(text), {k: r.resolve(v) for k, v in variables.items()})


def _fn_select(r: Resolver, arg: Any) -> Any:
    index, items = r.resolve(arg[0]), r.resolve(arg[1])
    try:
        return items[int(index)]
    except (IndexError, ValueError, TypeError) as exc:
        raise CfnError(f"Fn::Select index {index!r} out of range for {items!r}") from exc


def _fn_split(r: Resolver, arg: Any) -> list[str]:
    sep, text = arg
    return str(r.resolve(text)).split(str(sep))


def _fn_if(r: Resolver, arg: Any) -> Any:
    name, when_true, when_false = arg
    return r.resolve(when_true if r.condition(str(name)) else when_false)


def _fn_equals(r: Resolver, arg: Any) -> bool:
    a, b = r.resolve(arg[0]), r.resolve(arg[1])
    return bool(a == b)


def _fn_find_in_map(r: Resolver, arg: Any) -> Any:
    name, top, second = (r.resolve(a) for a in arg[:3])
    try:
        return r.template["Mappings"][name][top][second]
    except KeyError as exc:
        raise CfnError(f"Fn::FindInMap {name}/{top}/{second} not found") from exc


def _fn_base64(r: Resolver, arg: Any) -> str:
    import base64

    return base64.b64encode(str(r.resolve(arg)).encode()).decode()


_FUNCTIONS: dict[str, Any] = {
    "Fn::Join": _fn_join,
    "Fn::Sub": _fn_sub,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::If": _fn_if,
    "Fn::Equals": _fn_equals,
    "Fn::And": lambda r, arg: all(bool(r.resolve(a)) for a in arg),
    "Fn::Or": lambda r, arg: any(bool(r.resolve(a)) for a in arg),
    "Fn::Not": lambda r, arg: not bool(r.resolve(arg[0])),
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Base64": _fn_base64,
    "Fn::GetAZs": lambda r, arg: [f"{r.region}{z}" for z in "abcdef"],
}


def dependencies(spec: Mapping[str, Any], resources: Mapping[str, Any]) -> tuple[str, ...]:
    """The logical ids a resource waits for: ``DependsOn`` and the resources its properties
    reference (Ref, Fn::GetAtt, ``${Id}``/``${Id.Attr}`` in Fn::Sub), in first-seen order."""
    found: dict[str, None] = {}
    depends = spec.get("DependsOn") or []
    for lid in [depends] if isinstance(depends, str) else depends:
        found[str(lid)] = None

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            if len(value) == 1:
                key, arg = next(iter(value.items()))
                if key == "Ref" and isinstance(arg, str) and arg in resources:
                    found[arg] = None
                elif key == "Fn::GetAtt":
                    target = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
                    if isinstance(target, str) and target in resources:
                        found[target] = None
                elif key == "Fn::Sub":
                    text = arg if isinstance(arg, str) else arg[0]
                    for name in _SUB_VAR.findall(str(text)):
                        if name.split(".", 1)[0] in resources:
                            found[name.split(".", 1)[0]] = None
            for item in value.values():
                walk(item)

    walk(spec.get("Properties") or {})
    return tuple(found)


def resolve_stack(
    template: Mapping[str, Any],
    stack_name: str,
    assembly_dir: Path,
    *,
    region: str = REGION,
    account_id: str = ACCOUNT_ID,
    created: int | None = None,
) -> Stack:
    """Resolve every resource (skipping those whose Condition is false) and the outputs.

    ``created``: the stack's creation time (epoch seconds, default now), as in consumer ARNs."""
    resolver = Resolver(template, stack_name, region=region, account_id=account_id,
                        created=created)
    resources: dict[str, Resource] = {}
    for lid, spec in resolver.raw.items():
        if not isinstance(spec, dict) or "Type" not in spec:
            raise CfnError(f"resource {lid!r} has no Type")
        cond = spec.get("Condition")
        if cond is not None and not resolver.condition(str(cond)):
            continue
        ref, attrs = resolver.identity(lid)
        props = resolver.resolve(spec.get("Properties", {}) or {})
        resources[lid] = Resource(
            logical_id=lid, type=str(spec["Type"]), properties=props,
            metadata=dict(spec.get("Metadata", {}) or {}), ref=ref, attributes=attrs,
            depends_on=dependencies(spec, resolver.raw),
        )
    outputs: dict[str, Any] = {}
    for name, out in (template.get("Outputs") or {}).items():
        cond = out.get("Condition")
        if cond is None or resolver.condition(str(cond)):
            outputs[name] = resolver.resolve(out.get("Value"))
    return Stack(name=stack_name, assembly_dir=assembly_dir, resources=resources, outputs=outputs,
                 warnings=resolver.warnings)
