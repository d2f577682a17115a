"""Latency load test for the WebSocket pipeline: ``python -m loadtest`` (see ``--help``).

Open-loop (sends follow a fixed timeline, latency is measured from the intended send time so a
slow server cannot hide its latency), HDR histograms, exact merge of reports across processes.
"""

from __future__ import annotations
