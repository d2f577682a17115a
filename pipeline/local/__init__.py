"""The local twin: the synthesized pipeline running on 127.0.0.1."""

# Connections waiting to be accepted, on each of the twin's ports. The libraries' defaults (128)
# overflow in a storm of new connections at API Gateway's quota (500/s) plus the functions'
# calls (measured when werkzeug's server, which closed each connection, served the AWS port; it
# keeps them alive now): the kernel drops SYNs (ListenOverflows in /proc/net/netstat) and each
# dropped client retries 1, 3, 7 s later, so a join storm's tail measured the backlog, not the
# pipeline. Linux caps it at net.core.somaxconn (4096 by default).
ACCEPT_BACKLOG = 4096
