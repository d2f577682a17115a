"""The one place that patches third-party internals refuses versions it was not written for."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from pipeline.local import patches
from pipeline.local.errors import TwinError, UnsupportedVersionError


def test_installed_versions_are_supported() -> None:
    patches.check_versions()  # the twin's start-up check passes on this venv
    for package in patches.SUPPORTED:
        assert patches.is_supported(package, version(package))


def test_supported_ranges_match_pyproject() -> None:
    import tomllib

    from pipeline import PROJECT_ROOT

    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in patches.SUPPORTED:
        pins = [d for d in deps if d.replace("[server]", "").startswith(package + ">")]
        assert pins, package
        assert pins[0].replace("[server]", "") == package + patches.supported_range(package)


@pytest.mark.parametrize(("installed", "ok"), [
    ("5.2.5", True), ("5.2.9", True), ("5.2.4", False), ("5.3.0", False), ("6.0", False),
    ("5.3.0rc1", False), ("5.2.10.dev0", True),
])
def test_version_ranges(installed: str, ok: bool) -> None:
    assert patches.is_supported("moto", installed) is ok


def test_an_unsupported_version_names_package_installed_and_supported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(patches.SUPPORTED, "moto", ("0.1", "0.2"))
    with pytest.raises(UnsupportedVersionError) as err:
        patches.check_versions()
    assert isinstance(err.value, TwinError)
    assert err.value.package == "moto" and err.value.installed == version("moto")
    message = str(err.value)
    assert f"moto {version('moto')} is installed" in message and "moto >=0.1,<0.2" in message
