"""``python -m pipeline <command>``: the project's command line.

Each command lives in its own module, which exposes
``add_arguments(parser: argparse.ArgumentParser, command: str) -> None`` and
``run(args: argparse.Namespace) -> int`` (``args.command`` names the command). This file only
dispatches, so commands are added without touching each other. The local twin's commands
(``local``, ``token``) are found by name through the ``websocket_pipeline.commands`` entry points
(pyproject.toml), each module giving its one-line ``HELP``: the tools do not import the twin.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from pipeline import entry_points

PLUGIN_COMMANDS = "websocket_pipeline.commands"  # entry point group: command -> module
# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "publish": ("pipeline.publish", "put server-side messages for a room on the stream"),
    "client": ("pipeline.client.cli", "send frames to a stage and print the replies"),
    "new-consumer": ("pipeline.scaffold", "create a consumer microservice and register it"),
    "remove-consumer": ("pipeline.scaffold", "unregister a consumer and delete its files"),
    "verify": ("pipeline.verify.cli", "check a deployed stage (or the twin) behaves as assumed"),
    "plan": ("pipeline.plan.cli", "shards, concurrency, quotas and monthly cost for a traffic shape"),
    "redrive": ("pipeline.redrive.cli", "re-deliver the records behind a consumer's on-failure queue"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    parsers: dict[str, argparse.ArgumentParser] = {}
    plugins = {ep.name: ep.value for ep in entry_points(group=PLUGIN_COMMANDS)}
    for name, module_name in sorted(plugins.items()):
        module = _module(module_name)
        if module is not None and name not in COMMANDS:
            parsers[name] = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(parsers[name], name)
            modules[name] = module
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        parsers[name] = command_parser
        module = _module(module_name)
        if module is None:
            continue
        module.add_arguments(command_parser, name)
        modules[name] = module
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # a mistyped flag: the command's own usage, not the top-level one
        parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command not in modules:
        parser.error(f"{args.command}: not available in this build")
    return int(modules[args.command].run(args) or 0)


def _module(module_name: str) -> ModuleType | None:
    """The command's module, or None when this build leaves it out."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None


if __name__ == "__main__":
    sys.exit(main())
