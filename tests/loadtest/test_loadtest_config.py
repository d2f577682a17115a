from __future__ import annotations

import pytest

from loadtest.__main__ import main
from loadtest.config import parse_run_args
from loadtest.errors import ConfigError


def test_defaults_are_a_short_echo_run_against_the_twin() -> None:
    cfg = parse_run_args([])
    assert (cfg.scenario, cfg.url, cfg.duration, cfg.start_twin) == ("echo", None, 10.0, True)


def test_headers_and_query_reach_the_connect_request() -> None:
    cfg = parse_run_args(
        ["--url", "wss://x.example/prod?a=1", "--header", "Authorization: Bearer t:k",
         "--query", "token=abc=", "--scenario", "chat", "-c", "4", "--room-size", "4"]
    )  # fmt: skip
    assert cfg.headers == (("Authorization", "Bearer t:k"),)
    assert cfg.target_url(cfg.url or "") == "wss://x.example/prod?a=1&token=abc%3D"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--payload", "40000"], "--payload"),
        (["--payload", "-1"], "--payload"),
        (["--rate", "0"], "--rate"),
        (["--rate", "nan"], "--rate"),
        (["--duration", "inf"], "--duration"),
        (["-c", "0"], "--connections"),
        (["--url", "http://127.0.0.1:8080/dev"], "--url"),
        (["--header", "NoColon"], "--header"),
        (["--query", "novalue"], "--query"),
        (["--scenario", "chat", "-c", "3", "--room-size", "4"], "--room-size"),
        (["--scenario", "chat", "--room-size", "1"], "--room-size"),
        (["--json", "/nonexistent-dir/r.json"], "--json"),
        (["--plot", "/nonexistent-dir/r.png"], "--plot"),
    ],
)
def test_invalid_settings_name_the_flag(argv: list[str], option: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_run_args(argv)
    assert info.value.option == option


def test_cli_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--payload", "99999"]) == 2
    assert "--payload: 99999 is outside [0, 32768]" in capsys.readouterr().err


def test_unknown_scenario_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as info:
        parse_run_args(["--scenario", "nope"])
    assert info.value.code == 2


def test_the_system_proxy_is_read_from_the_environment_once_per_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from loadtest.config import system_proxy

    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                 "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert system_proxy("ws://127.0.0.1:8080/dev") is None
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert system_proxy("wss://abc.execute-api.us-east-1.amazonaws.com/prod") == (
        "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "amazonaws.com")
    assert system_proxy("wss://abc.execute-api.us-east-1.amazonaws.com/prod") is None
