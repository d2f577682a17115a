"""The libraries whose internals the twin touches: pinned exactly, refused at any other version,
and the behaviour each use relies on, tested here (an upgrade that breaks it fails a test)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline import PROJECT_ROOT, lockfile
from pipeline.local import patches
from pipeline.local.errors import TwinError, UnsupportedVersionError


@pytest.mark.parametrize("package", patches.PINNED)
def test_each_pinned_library_is_pinned_exactly_and_installed_at_the_pin(package: str) -> None:
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (line,) = [d for d in deps if d.split("==")[0].split("[")[0] == package]
    pin = line.split("==")[1]
    assert patches.expected(package) == pin == lockfile.LockFile().version(package)
    assert version(package) == pin
    patches.require(package)


def test_another_version_is_refused_naming_the_library_and_both_versions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "_installed", lambda package: "9.9.9")
    with pytest.raises(UnsupportedVersionError) as err:
        patches.check_versions()
    assert isinstance(err.value, TwinError)
    assert (err.value.package, err.value.installed) == ("moto", "9.9.9")
    assert str(err.value) == (
        f"moto 9.9.9 is installed, but the twin relies on the internals of moto "
        f"{version('moto')} exactly: run `make install` (installs uv.lock)")


def fake_release(root: Path, name: str, release: str) -> Path:
    """A dist-info that makes importlib.metadata report *release* for *name* (first on the path)."""
    info = root / f"{name.replace('-', '_')}-{release}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {release}\n")
    return root


@pytest.mark.parametrize("package", ["moto", "aiohttp"])
def test_the_twin_refuses_to_start_on_another_release_in_one_line(
        package: str, tmp_path: Path) -> None:
    """What a user sees with a newer release forced into the venv: one line and exit 2, before
    any synth or port, never TWIN-READY."""
    path = fake_release(tmp_path / "site", package, "99.0.0")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(PROJECT_ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "local", "--port", "0", "--aws-port", "0",
         "--no-synth", "--assembly", str(tmp_path / "none")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "TWIN-READY" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {package} 99.0.0 is installed, but the twin relies on the "
                     f"internals of {package} {version(package)} exactly: run `make install` "
                     "(installs uv.lock)"]


# --- the behaviour each use of a library's internals relies on -------------------------------
# aiohttp's reader (_payload_parser, _message_tail, _reader): a single frame over the quota closes
# 1009 while a message under the 128 KB limit still passes: tests/local/gateway/test_frame_limits.py
# and test_server.py run it through a real socket.


def test_aiohttp_still_hands_its_parser_where_the_frame_guard_replaces_it() -> None:
    from aiohttp.web_protocol import RequestHandler
    from aiohttp.web_ws import WebSocketResponse

    assert "_payload_parser" in RequestHandler.__slots__
    assert "_message_tail" in RequestHandler.__slots__
    assert callable(WebSocketResponse._post_start)


def test_airspeed_looks_methods_up_in_its_table_by_exact_class() -> None:
    import airspeed

    from pipeline.local.patches.airspeed_methods import add_methods

    class Token(str):
        pass

    add_methods(Token, {"shout": lambda self: self.upper() + "!"}, like=str)
    template = airspeed.Template("$t.shout() $t.length()")
    assert template.merge({"t": Token("hi")}) == "HI! 2"  # added, and str's own kept


def test_moto_serves_each_service_in_process_through_its_own_request_path() -> None:
    """The door hands moto a botocore request, as ``mock_aws`` does (moto.core.request)."""
    from pipeline.local.aws_door import AwsDoor
    from pipeline.local.kinesis import KinesisBackend, KinesisResponses

    door = AwsDoor(KinesisResponses(KinesisBackend()), None)
    missing = door.call_aws("dynamodb", "DescribeTable", b'{"TableName": "nowhere"}', None)
    assert missing.status == 400 and missing.error_type == "ResourceNotFoundException"
    listed = door.call_aws("sqs", "ListQueues", b"{}", None)
    assert listed.status == 200
    secret = door.call_aws("secretsmanager", "GetSecretValue", b'{"SecretId": "nowhere"}', None)
    assert secret.status >= 400 and secret.error_type == "ResourceNotFoundException"


def test_no_module_of_the_twin_assigns_to_an_attribute_of_a_moto_class() -> None:
    """The twin owns its Kinesis; moto is used as shipped (no patch of its private model)."""
    import ast

    offenders = []
    for path in sorted((PROJECT_ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text())
        moto_names = {alias.asname or alias.name for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("moto")
                      for alias in node.names}
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and \
                        (target.value.id in moto_names or target.value.id.endswith("_models")):
                    offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert offenders == []


def test_airspeed_evaluates_in_the_namespace_it_is_given_without_wrapping_it() -> None:
    import airspeed

    from pipeline.local.patches.airspeed_methods import template_namespace

    namespace = template_namespace({"who": "world"})
    template = airspeed.Template("#set($greeting = \"hello $who\")$greeting")
    assert template.merge(namespace) == "hello world"
    # The #set landed in the very object handed in: airspeed used it as its local namespace.
    assert namespace["greeting"] == "hello world"
    assert template_namespace({"who": "again"}).get("greeting") is None  # fresh per render


def test_a_macro_defined_in_one_render_is_not_defined_in_the_next() -> None:
    import airspeed

    from pipeline.local.patches.airspeed_methods import template_namespace

    template = airspeed.Template("#macro(hi $n)hi $n#end#hi($who)")
    assert template.merge(template_namespace({"who": "a"})) == "hi a"
    assert template.merge(template_namespace({"who": "b"})) == "hi b"  # no "cannot redefine"
