"""``python -m pipeline new-consumer`` / ``remove-consumer``: one command per microservice.

A consumer is its folder (``pipeline/registry.py``), so ``new-consumer NAME --route ACTION ...``
validates everything first (name, routes, the 20 consumers a stream allows, the consumers already
there), then writes ``consumers/NAME/`` (``handler.py``, ``settings.json``) and
``tests/consumers/test_NAME_twin.py``. The folder is filled under a hidden name and renamed into
place, so discovery never sees half a consumer; if anything fails, everything is removed.

``remove-consumer NAME`` deletes exactly those files. It refuses a consumer whose folder holds
files the generator did not write (or whose handler lacks the generator's marker, e.g. the
built-in consumers) unless ``--force``; ``__pycache__`` folders never count.

Exit codes: 0 done, 1 refused (one line on stderr, nothing changed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline import registry
from pipeline.aws.limits import ESM_BATCH_SIZE, MAX_STREAM_CONSUMERS
from pipeline.names import RESERVED_ROUTES
from pipeline.scaffold_templates import GENERATED_MARKER, render_handler, render_test

SHAREABLE_ROUTES = frozenset({"$disconnect"})  # registry.load_all lets several consumers react


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
    def consumers_dir(self) -> Path:
        return self.root / "consumers"

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests" / "consumers"

    def consumer_dir(self, name: str) -> Path:
        return self.consumers_dir / name

    def test_file(self, name: str) -> Path:
        return self.tests_dir / f"test_{name}_twin.py"

    def check(self) -> None:
        if not self.consumers_dir.is_dir():
            raise ScaffoldError(f"{self.root} is not a project: no consumers/ folder")


def render_settings(spec: NewConsumer) -> str:
    """``settings.json`` with every key of ``registry.SETTINGS`` (so the file shows what can be
    tuned), the defaults except what the command was given."""
    given: dict[str, object] = {
        "description": spec.description or f"{spec.name}: answers {', '.join(spec.routes)}.",
        "routes": list(spec.routes),
        "batchSize": spec.batch_size,
        "startingPosition": spec.starting_position,
        "roster": spec.roster,
    }
    values = {"description": given["description"]}  # first: what the consumer is
    for key, spec_field in registry.SETTINGS.items():
        default = spec_field.default
        values.setdefault(key, given.get(key, list(default) if isinstance(default, tuple)
                                         else default))
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in values.items())
    return "{\n" + body + "\n}\n"


# --- new-consumer ---------------------------------------------------------------------------


def validate_new(project: Project, spec: NewConsumer) -> None:
    """Every refusal of ``new-consumer``, checked before anything is written."""
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
    batch = ESM_BATCH_SIZE
    if spec.batch_size not in batch:
        raise ScaffoldError(f"--batch-size must be {batch.low}..{batch.high}, not {spec.batch_size}")
    if not spec.description.isprintable() or '"' in spec.description or "\\" in spec.description:
        raise ScaffoldError("--description must be one printable line without '\"' or '\\'")
    project.check()
    for path in (project.consumer_dir(spec.name), project.test_file(spec.name)):
        if path.exists():
            raise ScaffoldError(f"{path.relative_to(project.root)} already exists")
    try:
        existing = registry.load_all(project.consumers_dir)
    except registry.RegistryError as exc:
        raise ScaffoldError(f"the existing consumers are invalid: {exc}") from exc
    if len(existing) >= MAX_STREAM_CONSUMERS:
        raise ScaffoldError(
            f"{len(existing)} consumers exist; a Kinesis stream allows "
            f"{MAX_STREAM_CONSUMERS} enhanced fan-out consumers"
        )
    owners = {r: s.name for s in existing for r in s.routes if r not in SHAREABLE_ROUTES}
    for route in spec.routes:
        if route in owners:
            raise ScaffoldError(f"route {route!r} is already claimed by consumer {owners[route]!r}")


def _staging(project: Project, name: str) -> Path:
    """Where a folder is filled or emptied: hidden, so discovery skips it."""
    return project.consumers_dir / f".{name}.scaffold"


def create_consumer(project: Project, spec: NewConsumer) -> list[Path]:
    """Validate, then write the consumer's folder and test; remove them again on any failure."""
    validate_new(project, spec)
    folder, test = project.consumer_dir(spec.name), project.test_file(spec.name)
    staging = _staging(project, spec.name)
    action_routes = tuple(r for r in spec.routes if not r.startswith("$"))
    created: list[Path] = []  # undone in reverse
    try:
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed run: ours by its name
        staging.mkdir()
        created.append(staging)
        _write(staging / "handler.py", render_handler(spec.name, spec.routes, spec.description))
        _write(staging / "settings.json", render_settings(spec))
        created.extend(d for d in (test.parent.parent, test.parent) if not d.exists())
        test.parent.mkdir(parents=True, exist_ok=True)
        _write(test, render_test(spec.name, action_routes))
        created.append(test)
        staging.rename(folder)
        created[0] = folder
        registry.load_all(project.consumers_dir)
    except BaseException as exc:
        for path in reversed(created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if isinstance(exc, registry.RegistryError | OSError):
            raise ScaffoldError(f"nothing written: {exc}") from exc
        raise
    return [folder / "handler.py", folder / "settings.json", test]


def _write(path: Path, text: str) -> None:
    with path.open("x") as out:  # never overwrite: every file written here is new
        out.write(text)


# --- remove-consumer ------------------------------------------------------------------------


def _foreign_files(project: Project, name: str) -> list[str]:
    """Files in the consumer's folder (and its test) that the generator did not write."""
    folder = project.consumer_dir(name)
    foreign = []
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        if path.relative_to(folder).as_posix() not in registry.CONSUMER_FILES:
            foreign.append(str(path.relative_to(project.root)))
    handler = folder / "handler.py"
    if not handler.is_file() or GENERATED_MARKER not in handler.read_text():
        foreign.append(f"{handler.relative_to(project.root)} (not written by new-consumer)")
    test = project.test_file(name)
    if test.is_file() and GENERATED_MARKER not in test.read_text():
        foreign.append(f"{test.relative_to(project.root)} (not written by new-consumer)")
    return foreign


def remove_consumer(project: Project, name: str, *, force: bool = False) -> list[Path]:
    """Delete ``name``'s folder and generated test; returns what was removed."""
    project.check()
    folder, test = project.consumer_dir(name), project.test_file(name)
    if not registry.NAME_PATTERN.match(name) or not folder.is_dir():
        raise ScaffoldError(f"no consumer {name!r}: no {folder.relative_to(project.root)}/")
    foreign = _foreign_files(project, name)
    if foreign and not force:
        raise ScaffoldError(
            f"consumer {name!r} has files the generator did not write ({', '.join(foreign)}); "
            "re-run with --force to delete them too"
        )
    staging = _staging(project, name)
    try:
        shutil.rmtree(staging, ignore_errors=True)
        folder.rename(staging)  # one step: from here on the consumer is out of the stack
    except OSError as exc:
        raise ScaffoldError(f"nothing removed: cannot move {folder}: {exc}") from exc
    removed = [folder]
    try:
        shutil.rmtree(staging)
        if test.exists():
            test.unlink()
            removed.append(test)
        cache = project.tests_dir / "__pycache__"
        for pyc in cache.glob(f"test_{name}_twin.*.pyc") if cache.is_dir() else ():
            pyc.unlink()
        for directory in (cache, project.tests_dir):  # created by new-consumer when missing
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    except OSError as exc:
        raise ScaffoldError(
            f"{name!r} is out of the stack but some of its files remain ({exc}): delete them "
            "by hand"
        ) from exc
    return removed


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
            paths = remove_consumer(project, args.name, force=args.force)
            verb = "removed"
        else:
            spec = NewConsumer(
                name=args.name, routes=tuple(args.routes), batch_size=args.batch_size,
                starting_position=args.starting_position, roster=args.roster,
                description=args.description,
            )
            paths = create_consumer(project, spec)
            verb = "wrote"
    except ScaffoldError as exc:
        print(f"{args.command}: refused: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"{verb} {path.relative_to(project.root)}")
    print("a running `make local` serves the change within a synth (it re-synthesizes in the "
          "background); `make synth` shows it")
    return 0
