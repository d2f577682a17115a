"""The waiter's handler, shipped inline (``index.py``) by ``consumer_activation``."""
