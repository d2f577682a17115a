"""The browser client (``/client.js``) and the demo page (``/``) in headless Chromium, against the twin.

Each page is the twin's demo page, which uses the module; ``window.demo`` exposes its client, the
state events and the messages, and ``window.__sockets`` counts every WebSocket the page opens.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.aws.limits import REGION
from pipeline.local.harness import Twin, start_twin, stop_twin
from pipeline.local.oidc import TwinIssuer

pytestmark = [pytest.mark.twin, pytest.mark.synth]
IDLE_S = 3.0  # the twin's --idle-timeout: pages ping every second
WAIT_S = 20.0
# Counts every WebSocket a page constructs (a connect attempt), before any page script runs.
COUNT_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) { super(url, protocols); window.__sockets.push(url); }
  };
})();
"""


@pytest.fixture(scope="module")
def twin(cloud_assembly: Path) -> Iterator[Twin]:
    running = start_twin(cloud_assembly, "--idle-timeout", str(IDLE_S))
    yield running
    stop_twin(running)


def page_url(twin: Twin, **params: str) -> str:
    base = twin.ws.rsplit("/", 1)[0].replace("ws://", "http://") + "/"
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


class Page:
    """One tab of *driver* on the demo page."""

    def __init__(self, driver: Any, url: str, first: bool) -> None:
        if not first:
            driver.switch_to.new_window("tab")
        self.driver = driver
        self.handle = driver.current_window_handle
        # per tab: CDP commands go to the current tab's target
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SOCKETS})
        driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_script(script, *args)

    def wait(self, script: str, timeout: float = WAIT_S) -> Any:
        """Wait until *script* (an expression) is truthy; return its value."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.switch_to.window(self.handle)
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            lambda d: d.execute_script(f"return {script};"),
            message=f"not true within {timeout} s: {script}")

    def states(self) -> list[str]:
        return [s["state"] for s in self.js("return window.demo.states;")]

    def sockets(self) -> int:
        return int(self.js("return window.__sockets.length;"))


@pytest.fixture
def pages(browser: Any, twin: Twin) -> Callable[..., Page]:
    opened: list[Page] = []

    def open_page(**params: str) -> Page:
        page = Page(browser, page_url(twin, **params), first=not opened)
        opened.append(page)
        page.wait("window.demo && window.demo.client.state === 'open'")
        return page

    return open_page


def _message(page: Page, text: str) -> dict[str, Any]:
    found = page.wait(f"window.demo.messages.find(m => m.action === 'message' && m.text === {text!r})")
    assert isinstance(found, dict)
    return found


def _send(page: Page, room: str, text: str) -> dict[str, Any]:
    """sendAcked from the page; its ack."""
    ack = page.js("return await window.demo.client.sendAcked("
                  "{action: 'send', room: arguments[0], text: arguments[1]});", room, text)
    assert isinstance(ack, dict) and ack["action"] == "ack", ack
    return ack


def test_the_twin_serves_the_demo_page_and_the_module(twin: Twin) -> None:
    with urllib.request.urlopen(page_url(twin)) as page:
        html = page.read().decode()
    assert 'import { connect, presenceText } from "/client.js"' in html
    assert "/@@STAGE@@" not in html
    with urllib.request.urlopen(page_url(twin) + "client.js") as module:
        assert module.headers["Content-Type"].startswith("text/javascript")
        assert "export function connect" in module.read().decode()


def test_two_pages_chat(pages: Callable[..., Page]) -> None:
    alice, bob = pages(room="lobby", ping="1000"), pages(room="lobby", ping="1000")
    for page in (alice, bob):
        page.wait("window.demo.messages.some(m => m.action === 'joined')")
    _send(alice, "lobby", "hello bob")
    assert _message(bob, "hello bob")["room"] == "lobby"
    _send(bob, "lobby", "hi alice")
    _message(alice, "hi alice")
    echo = alice.js("window.demo.client.send({action: 'echo', data: {sentAt: Date.now()}});"
                    "return true;")
    assert echo and alice.wait("document.getElementById('rtt').textContent.endsWith(' ms')")


def test_a_dropped_page_reconnects_rejoins_and_gets_the_next_message(
    pages: Callable[..., Page], twin: Twin,
) -> None:
    alice, bob = pages(room="drops", ping="1000"), pages(room="drops", ping="1000")
    for page in (alice, bob):
        page.wait("window.demo.messages.some(m => m.action === 'joined')")
    _send(alice, "drops", "who am i")
    alice_id = _message(bob, "who am i")["from"]
    api = boto3.client("apigatewaymanagementapi", endpoint_url=twin.connections.removesuffix(
        "/@connections"), region_name=REGION, aws_access_key_id="x",
        aws_secret_access_key="x")
    api.delete_connection(ConnectionId=alice_id)  # the gateway drops alice (1000)
    alice.wait("window.demo.states.some(s => s.state === 'reconnecting')")
    alice.wait("window.demo.client.state === 'open' && "
               "window.demo.messages.filter(m => m.action === 'joined').length >= 2")
    assert alice.sockets() == 2
    _send(bob, "drops", "welcome back")
    _message(alice, "welcome back")
    assert alice.states() == ["connecting", "open", "reconnecting", "open"]


def test_keepalive_pings_hold_a_page_past_the_idle_timeout(pages: Callable[..., Page]) -> None:
    kept = pages(ping="1000")
    idle = pages(ping="600000")  # pings every 10 minutes: the 3 s idle timeout drops it
    deadline = time.monotonic() + 12.0
    while time.monotonic() < deadline:  # the 12 s the issue asks for, watched throughout
        assert kept.js("return window.demo.client.state;") == "open"
        time.sleep(0.5)
    assert kept.states() == ["connecting", "open"] and kept.sockets() == 1
    assert "reconnecting" in idle.states() and idle.sockets() >= 2


@pytest.fixture(scope="module")
def short_life_twin(cloud_assembly: Path) -> Iterator[Twin]:
    running = start_twin(cloud_assembly, "--max-connection-life", "4")
    yield running
    stop_twin(running)


def test_the_connection_is_replaced_before_its_maximum_life(
    browser: Any, short_life_twin: Twin,
) -> None:
    # The twin closes every connection after 4 s; the page replaces its own every 2 s, opening
    # (and joining) the new one before closing the old: never "reconnecting", no message lost.
    url = page_url(short_life_twin, room="life", life="2000", ping="1000")
    rotating = Page(browser, url, first=True)
    rotating.wait("window.demo && window.demo.client.state === 'open'")
    sender = Page(browser, page_url(short_life_twin, room="life"), first=False)
    sender.wait("window.demo.messages.some(m => m.action === 'joined')")
    for n in range(5):  # ~5 s of chat across at least two replacements
        _send(sender, "life", f"tick {n}")
        _message(rotating, f"tick {n}")
        time.sleep(1.0)  # the span under test, not a wait for work
    assert rotating.states() == ["connecting", "open"]
    assert rotating.sockets() >= 3


@pytest.fixture(scope="module")
def jwt_twin(jwt_assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    oidc = tmp_path_factory.mktemp("oidc-browser")
    running = start_twin(jwt_assembly, "--oidc-dir", str(oidc))
    with running.output_lock:
        running.output.append(f"OIDC-DIR {oidc}\n")
    yield running
    stop_twin(running)


def test_an_expired_token_ends_closed_unauthorized_without_a_storm(
    browser: Any, jwt_twin: Twin,
) -> None:
    (line,) = [line for line in jwt_twin.lines() if line.startswith("OIDC-DIR ")]
    issuer = TwinIssuer.load(Path(line.split(" ", 1)[1].strip()))
    valid = Page(browser, page_url(jwt_twin, token=issuer.mint("alice", 600)), first=True)
    valid.wait("window.demo && window.demo.client.state === 'open'")
    expired = Page(browser, page_url(jwt_twin, token=issuer.mint("mallory", -120)), first=False)
    closed = expired.wait("window.demo && window.demo.states.find(s => s.state === 'closed')")
    assert closed["reason"] == "unauthorized"
    time.sleep(3.0)  # a reconnect storm would open more sockets in this time
    assert expired.sockets() == 1
    assert expired.states() == ["connecting", "closed"]
    assert any('"reason": "expired"' in line for line in jwt_twin.lines())


def test_the_page_learns_its_own_connection_id_without_a_stream_record(
    pages: Callable[..., Page],
) -> None:
    alice, bob = pages(room="ids", ping="1000"), pages(room="ids", ping="1000")
    for page in (alice, bob):
        page.wait("window.demo.messages.some(m => m.action === 'joined')")
    own = alice.js("return await window.demo.client.whoami();")
    assert isinstance(own, str) and own
    assert alice.js("return window.demo.client.connectionId;") == own
    _send(alice, "ids", "it is me")
    assert _message(bob, "it is me")["from"] == own  # the id the consumers see
