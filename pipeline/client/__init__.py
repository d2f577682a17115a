"""Clients of the pipeline's WebSocket API (docs/clients.md).

* :func:`connect` — the asyncio client (:mod:`pipeline.client.connection`);
* ``client.js`` (beside this file, served by the twin at ``/client.js``) — the browser client,
  one dependency-free ES module with the same behaviour.

Exceptions::

    ClientError
    ├── Nacked        an acked frame was refused, or given up after its attempts
    └── ClientClosed  the client is closed (reason "client" or "unauthorized")
"""

from __future__ import annotations

from pipeline.client.connection import Client, ClientClosed, ClientError, Nacked, connect
from pipeline.client.policy import ClientOptions

__all__ = ["Client", "ClientClosed", "ClientError", "ClientOptions", "Nacked", "connect"]
