"""``python -m pipeline verify``: check a deployed stage (or the twin) right after ``cdk deploy``.

Every behaviour the twin emulates by assumption (docs/fidelity.md, "Unverified on AWS") gets one
live check against the real stage; the result is one table row per check and exit status 1 when
any check fails. Layout: :mod:`.target` finds the URL, stream and roster table (CloudFormation
outputs or the twin); :mod:`.client` is the WebSocket client; :mod:`.checks` and
:mod:`.aws_checks` and :mod:`.alarm` are the checks; :mod:`.report` prints and writes the results; :mod:`.cli`
runs them under one deadline.
"""

from __future__ import annotations
