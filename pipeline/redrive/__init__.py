"""``python -m pipeline redrive``: re-deliver the records behind a consumer's on-failure queue.

``ranges.py`` (pure) reads an on-failure message and picks its records from the shard;
``target.py`` finds the consumer's queue, stream, filters and function settings (from the
synthesized template, with physical names from the twin or from CloudFormation);
``cli.py`` reads, re-delivers through the consumer's own handler and deletes.
"""

from __future__ import annotations


class RedriveError(Exception):
    """The consumer, its queue or a message cannot be used for a redrive."""
