"""The local twin: the synthesized pipeline running on 127.0.0.1."""
