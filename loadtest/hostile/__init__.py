"""The hostile-input run: `python -m loadtest.hostile [--url ws://...]` (docs/hostile-input.md).

Sends malformed, oversized, spoofed and protocol-breaking frames to the twin (or any WebSocket
URL), each on a fresh connection, prints what came back, then checks that valid frames are still
answered. ``cases`` holds the inputs and their documented answers, ``runner`` runs and judges
them, ``rawws`` is the client that can send what RFC 6455 forbids.
"""

from __future__ import annotations
