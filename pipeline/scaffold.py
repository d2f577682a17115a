"""``python -m pipeline new-consumer`` / ``remove-consumer``: one command per microservice.

``new-consumer NAME --route ACTION ...`` validates everything first (name, routes, the 20
consumers a stream allows, what the registry already holds), then writes
``consumers/NAME/handler.py``, ``consumers/NAME/settings.json``,
``tests/consumers/test_NAME_twin.py`` and the ``CONSUMERS`` entry in ``pipeline/registry.py``.
If any write or the final ``registry.load_all()`` check fails, everything is rolled back.

``remove-consumer NAME`` undoes exactly that. It refuses a consumer whose folder holds files the
generator did not write (or whose handler lacks the generator's marker, e.g. the built-in
consumers) unless ``--force``; ``__pycache__`` folders never count.

Exit codes: 0 done, 1 refused (one line on stderr, nothing changed).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import registry
from pipeline.scaffold_templates import GENERATED_MARKER, render_handler, render_test

REGISTRY_FILE = Path("pipeline") / "registry.py"
REGISTRY_START = "# --- registry"
REGISTRY_END = "# --- end of registry"
# $connect writes the roster; ping is the gateway's own keepalive (a MOCK integration):
# no consumer sees either.
RESERVED_ROUTES = frozenset({"$connect", "ping"})
SHAREABLE_ROUTES = frozenset({"$disconnect"})  # registry.load_all lets several consumers react
GENERATED_FILES = ("handler.py", "settings.json")


class ScaffoldError(Exception):
    """The command was refused; ``str(exc)`` is the one-line reason. Nothing was changed."""


@dataclass(frozen=True)
class NewConsumer:
    """What ``new-consumer`` was asked to create."""

    name: str
    routes: tuple[str, ...]
    batch_size: int = 100
    starting_position: str = "LATEST"
    roster: str = "none"
    description: str = ""


@dataclass(frozen=True)
class Project:
    """The paths of one project tree (the real one or a copy)."""

    root: Path

    @property
    def registry_file(self) -> Path:
        return self.root / REGISTRY_FILE

    @property
    def consumers_dir(self) -> Path:
        return self.root / "consumers"

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests" / "consumers"

    def consumer_dir(self, name: str) -> Path:
        return self.consumers_dir / name

    def test_file(self, name: str) -> Path:
        return self.tests_dir / f"test_{name}_twin.py"


# --- registry block -------------------------------------------------------------------------


def registered_names(source: str) -> tuple[str, ...]:
    """The ``CONSUMERS`` tuple of a registry module's source, without importing it."""
    try:
        body = ast.parse(source).body
    except SyntaxError as exc:
        raise ScaffoldError(f"pipeline/registry.py is not valid Python: {exc}") from exc
    for node in body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        if value is None or not any(isinstance(t, ast.Name) and t.id == "CONSUMERS" for t in targets):
            continue
        try:
            names = ast.literal_eval(value)
        except ValueError:
            break
        if isinstance(names, tuple) and all(isinstance(n, str) for n in names):
            return names
    raise ScaffoldError("pipeline/registry.py has no literal CONSUMERS tuple of names")


def _block_bounds(lines: list[str]) -> tuple[int, int]:
    starts = [i for i, line in enumerate(lines) if line.startswith(REGISTRY_START)]
    ends = [i for i, line in enumerate(lines) if line.startswith(REGISTRY_END)]
    if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
        raise ScaffoldError(
            f"pipeline/registry.py needs exactly one '{REGISTRY_START}' ... '{REGISTRY_END}' block"
        )
    return starts[0], ends[0]


def with_entry_added(source: str, name: str) -> str:
    """``source`` with ``name`` appended to the CONSUMERS tuple (one line, before its ``)``)."""
    lines = source.splitlines(keepends=True)
    start, end = _block_bounds(lines)
    closing = [i for i in range(start + 1, end) if lines[i].strip() == ")"]
    if len(closing) != 1:
        raise ScaffoldError("pipeline/registry.py: the CONSUMERS tuple must end with a ')' line")
    lines.insert(closing[0], f'    "{name}",\n')
    return _checked("".join(lines), (*registered_names(source), name))


def with_entry_removed(source: str, name: str) -> str:
    """``source`` without ``name``'s line in the CONSUMERS tuple."""
    lines = source.splitlines(keepends=True)
    start, end = _block_bounds(lines)
    entry = [i for i in range(start + 1, end) if lines[i].split("#")[0].strip() == f'"{name}",']
    if len(entry) != 1:
        raise ScaffoldError(f"pipeline/registry.py: no line '\"{name}\",' in the CONSUMERS block")
    del lines[entry[0]]
    expected = tuple(n for n in registered_names(source) if n != name)
    return _checked("".join(lines), expected)


def _checked(source: str, expected: tuple[str, ...]) -> str:
    if registered_names(source) != expected:  # the edit must mean exactly what we intended
        raise ScaffoldError("pipeline/registry.py: could not edit the CONSUMERS tuple safely")
    return source


# --- files ----------------------------------------------------------------------------------


def render_settings(spec: NewConsumer) -> str:
    """``settings.json`` with every key of ``registry._SETTING_KEYS`` the generator sets."""
    values: dict[str, object] = {
        "description": spec.description or f"{spec.name}: answers {', '.join(spec.routes)}.",
        "routes": list(spec.routes),
        "batchSize": spec.batch_size,
        "maxBatchingWindowSeconds": 0,
        "startingPosition": spec.starting_position,
        "parallelizationFactor": 1,
        "retryAttempts": 3,
        "maxRecordAgeSeconds": 3600,
        "timeoutSeconds": 30,
        "memoryMb": 256,
        "roster": spec.roster,
    }
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in values.items())
    return "{\n" + body + "\n}\n"


@dataclass
class _Transaction:
    """Writes files atomically and remembers how to undo them."""

    created_files: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    replaced: dict[Path, bytes] = field(default_factory=dict)

    def mkdir(self, path: Path) -> None:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir()
            self.created_dirs.append(directory)

    def write(self, path: Path, text: str) -> None:
        self.mkdir(path.parent)
        original = path.read_bytes() if path.exists() else None
        _atomic_write(path, text.encode())  # all or nothing: undo only what happened
        if original is None:
            self.created_files.append(path)
        else:
            self.replaced.setdefault(path, original)

    def rollback(self) -> None:
        for path, data in self.replaced.items():
            _atomic_write(path, data)
        for path in reversed(self.created_files):
            path.unlink(missing_ok=True)
        for directory in reversed(self.created_dirs):
            shutil.rmtree(directory, ignore_errors=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- new-consumer ---------------------------------------------------------------------------


def validate_new(project: Project, spec: NewConsumer) -> tuple[str, ...]:
    """Every refusal of ``new-consumer``; returns the registry's names (before the add)."""
    if not registry.NAME_PATTERN.match(spec.name):
        raise ScaffoldError(
            f"invalid consumer name {spec.name!r}: use {registry.NAME_PATTERN.pattern}"
        )
    if not spec.routes:
        raise ScaffoldError("give at least one --route")
    if len(set(spec.routes)) != len(spec.routes):
        raise ScaffoldError(f"a route is given twice: {list(spec.routes)}")
    for route in spec.routes:
        if route in RESERVED_ROUTES:
            raise ScaffoldError(f"route {route!r} is reserved (the gateway answers it itself)")
        if not registry.ROUTE_PATTERN.match(route):
            raise ScaffoldError(f"invalid route {route!r}: use {registry.ROUTE_PATTERN.pattern}")
    if all(r.startswith("$") for r in spec.routes):
        raise ScaffoldError("give at least one client action route (not starting with '$')")
    if not 1 <= spec.batch_size <= 10_000:
        raise ScaffoldError(f"--batch-size must be 1..10000, not {spec.batch_size}")
    if not spec.description.isprintable() or '"' in spec.description or "\\" in spec.description:
        raise ScaffoldError("--description must be one printable line without '\"' or '\\'")
    if not project.registry_file.is_file():
        raise ScaffoldError(f"{project.root} is not a project: no {REGISTRY_FILE}")
    names = registered_names(project.registry_file.read_text())
    if spec.name in names:
        raise ScaffoldError(f"consumer {spec.name!r} is already registered")
    for path in (project.consumer_dir(spec.name), project.test_file(spec.name)):
        if path.exists():
            raise ScaffoldError(f"{path.relative_to(project.root)} already exists")
    if len(names) >= registry.MAX_STREAM_CONSUMERS:
        raise ScaffoldError(
            f"{len(names)} consumers are registered; a Kinesis stream allows "
            f"{registry.MAX_STREAM_CONSUMERS} enhanced fan-out consumers"
        )
    try:
        existing = registry.load_all(names, project.consumers_dir)
    except registry.RegistryError as exc:
        raise ScaffoldError(f"the registry is invalid already: {exc}") from exc
    owners = {r: s.name for s in existing for r in s.routes if r not in SHAREABLE_ROUTES}
    for route in spec.routes:
        if route in owners:
            raise ScaffoldError(f"route {route!r} is already claimed by consumer {owners[route]!r}")
    return names


def create_consumer(project: Project, spec: NewConsumer) -> list[Path]:
    """Validate, then write the consumer's files and registry entry; roll back on any failure."""
    names = validate_new(project, spec)
    registry_source = project.registry_file.read_text()
    new_registry = with_entry_added(registry_source, spec.name)
    action_routes = tuple(r for r in spec.routes if not r.startswith("$"))
    folder = project.consumer_dir(spec.name)
    outputs = {
        folder / "handler.py": render_handler(spec.name, spec.routes, spec.description),
        folder / "settings.json": render_settings(spec),
        project.test_file(spec.name): render_test(spec.name, action_routes),
    }
    tx = _Transaction()
    try:
        for path, text in outputs.items():
            tx.write(path, text)
        tx.write(project.registry_file, new_registry)
        registry.load_all((*names, spec.name), project.consumers_dir)
    except BaseException as exc:
        tx.rollback()
        if isinstance(exc, registry.RegistryError | OSError):
            raise ScaffoldError(f"nothing written: {exc}") from exc
        raise
    return [*outputs, project.registry_file]


# --- remove-consumer ------------------------------------------------------------------------


def _foreign_files(project: Project, name: str) -> list[str]:
    """Files in the consumer's folder (and its test) that the generator did not write."""
    folder = project.consumer_dir(name)
    foreign = []
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or path.is_dir():
                continue
            if path.relative_to(folder).as_posix() not in GENERATED_FILES:
                foreign.append(str(path.relative_to(project.root)))
        handler = folder / "handler.py"
        if not handler.is_file() or GENERATED_MARKER not in handler.read_text():
            foreign.append(f"{handler.relative_to(project.root)} (not written by new-consumer)")
    test = project.test_file(name)
    if test.is_file() and GENERATED_MARKER not in test.read_text():
        foreign.append(f"{test.relative_to(project.root)} (not written by new-consumer)")
    return foreign


def remove_consumer(project: Project, name: str, *, force: bool = False) -> list[Path]:
    """Unregister ``name`` and delete its folder and generated test; returns what was removed."""
    if not project.registry_file.is_file():
        raise ScaffoldError(f"{project.root} is not a project: no {REGISTRY_FILE}")
    source = project.registry_file.read_text()
    if name not in registered_names(source):
        raise ScaffoldError(f"no consumer {name!r} is registered")
    new_source = with_entry_removed(source, name)
    foreign = _foreign_files(project, name)
    if foreign and not force:
        raise ScaffoldError(
            f"consumer {name!r} has files the generator did not write ({', '.join(foreign)}); "
            "re-run with --force to delete them too"
        )
    try:
        _atomic_write(project.registry_file, new_source.encode())
    except OSError as exc:
        raise ScaffoldError(f"nothing removed: cannot write pipeline/registry.py: {exc}") from exc
    # Unregistered first: from here on the consumer is out of the stack whatever else happens.
    removed = [project.registry_file]
    try:
        _delete_files(project, name, removed)
    except OSError as exc:
        raise ScaffoldError(
            f"{name!r} is unregistered but some of its files remain ({exc}): delete them by hand"
        ) from exc
    return removed


def _delete_files(project: Project, name: str, removed: list[Path]) -> None:
    folder, test = project.consumer_dir(name), project.test_file(name)
    if folder.exists():
        shutil.rmtree(folder)
        removed.append(folder)
    if test.exists():
        test.unlink()
        removed.append(test)
    cache = project.tests_dir / "__pycache__"
    for pyc in cache.glob(f"test_{name}_twin.*.pyc") if cache.is_dir() else ():
        pyc.unlink()
    for directory in (cache, project.tests_dir):  # created by new-consumer when missing
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


# --- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Arguments of ``new-consumer`` or ``remove-consumer``."""
    parser.add_argument("name", help="consumer name, e.g. scores (lower case, digits, _)")
    parser.add_argument(
        "--project-dir", type=Path, default=registry.PROJECT_ROOT,
        help="project to change (default: the one this package belongs to)",
    )
    if command == "remove-consumer":
        parser.add_argument(
            "--force", action="store_true",
            help="also delete files in the consumer's folder that the generator did not write",
        )
        return
    parser.add_argument(
        "--route", action="append", required=True, dest="routes", metavar="ACTION",
        help="a client action this consumer answers (repeat for several)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="records per invocation")
    parser.add_argument(
        "--starting-position", choices=("LATEST", "TRIM_HORIZON"), default="LATEST",
        help="TRIM_HORIZON replays the stream's retained records into the new consumer",
    )
    parser.add_argument(
        "--roster", choices=("none", "read", "readwrite"), default="none",
        help="access to the connection roster table",
    )
    parser.add_argument("--description", default="", help="one line for settings.json")


def run(args: argparse.Namespace) -> int:
    """Run ``new-consumer`` or ``remove-consumer``; 0 on success, 1 (one line) when refused."""
    project = Project(Path(args.project_dir).resolve())
    try:
        if args.command == "remove-consumer":
            removed = remove_consumer(project, args.name, force=args.force)
            verb = "removed"
        else:
            spec = NewConsumer(
                name=args.name, routes=tuple(args.routes), batch_size=args.batch_size,
                starting_position=args.starting_position, roster=args.roster,
                description=args.description,
            )
            removed = create_consumer(project, spec)
            verb = "wrote"
    except ScaffoldError as exc:
        print(f"{args.command}: refused: {exc}", file=sys.stderr)
        return 1
    for path in removed:
        done = "updated" if path == project.registry_file else verb
        print(f"{done} {path.relative_to(project.root)}")
    print("restart `make local` (it synthesizes) to serve the change; `make synth` shows it")
    return 0
