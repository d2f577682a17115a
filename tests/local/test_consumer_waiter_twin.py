"""A 7-consumer stack on the twin starts only with the consumers-ACTIVE waiter (issue 21 finding 3).

The twin provisions in the template's dependency order and, like CloudFormation's
``AWS::Kinesis::StreamConsumer``, counts a consumer as created while it is still CREATING; its
Kinesis refuses a 6th registration while 5 are CREATING. So the synthesized stack (waiter between
groups of 5) starts, and the same template without the waiter, or with the old "consumer i after
consumer i - 5" chain, fails with LimitExceededException as a fresh deploy on AWS would.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.stack import PipelineStack
from pipeline.infrastructure.synth import CLI_CONTEXT
from pipeline.local.cfn import resolve_stack
from pipeline.local.kinesis.exceptions import LimitExceededError
from pipeline.local.provision import WAITER_RESOURCE_TYPE, provision
from pipeline.local.services import AwsServices
from pipeline.registry import CONSUMERS_DIR, load_all

pytestmark = pytest.mark.synth
Template = dict[str, Any]
ACTIVATION_S = 0.3
CONSUMERS = 7


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> Template:
    folder = tmp_path_factory.mktemp("seven")
    settings = json.loads((CONSUMERS_DIR / "echo" / "settings.json").read_text())
    for i in range(CONSUMERS):
        (folder / f"c{i}").mkdir()
        shutil.copy2(CONSUMERS_DIR / "echo" / "handler.py", folder / f"c{i}" / "handler.py")
        (folder / f"c{i}" / "settings.json").write_text(
            json.dumps({**settings, "routes": [f"r{i}"]}))
    app = App(outdir=str(tmp_path_factory.mktemp("cdk.out.seven")),
              context={**CLI_CONTEXT, "stage": "seven"})
    config = PipelineConfig.from_context(app.node.try_get_context)
    stack = PipelineStack(app, config.stack_name, config=config, consumers=load_all(folder))
    return dict(app.synth().get_stack_by_name(stack.stack_name).template)


def _consumers(template: Template) -> list[str]:
    return [k for k, v in template["Resources"].items()
            if v["Type"] == "AWS::Kinesis::StreamConsumer"]


def _without_waiters(template: Template) -> Template:
    out = copy.deepcopy(template)
    waiters = {k for k, v in out["Resources"].items() if v["Type"] == WAITER_RESOURCE_TYPE}
    for lid in waiters:
        del out["Resources"][lid]
    for res in out["Resources"].values():
        if "DependsOn" in res:
            deps = res["DependsOn"] if isinstance(res["DependsOn"], list) else [res["DependsOn"]]
            res["DependsOn"] = [d for d in deps if d not in waiters]
    return out


def _provision(template: Template, name: str) -> AwsServices:
    # a stack name per run: moto's tables and queues are process-wide
    stack = resolve_stack(template, name, Path("/nowhere"))
    services = AwsServices(consumer_activation_s=ACTIVATION_S)
    services.start(0)
    try:
        provision(services, stack)
    finally:
        services.stop()
    return services


def test_the_stack_waits_for_the_first_five_to_be_active(seven: Template) -> None:
    services = _provision(seven, "Seven-waiter")
    (stream,) = services.kinesis.streams.values()
    consumers = sorted(stream.consumers.values(), key=lambda c: c.active_at)
    assert len(consumers) == CONSUMERS
    # the 6th and 7th registered only after the 5 before them were ACTIVE
    first_group_active = max(c.active_at for c in consumers[:5])
    assert all(c.active_at - ACTIVATION_S >= first_group_active for c in consumers[5:])


def test_without_the_waiter_the_sixth_registration_fails(seven: Template) -> None:
    with pytest.raises(LimitExceededError) as caught:
        _provision(_without_waiters(seven), "Seven-none")
    assert caught.value.code == "LimitExceededException"
    assert "simultaneously be in CREATING" in caught.value.message


def test_the_old_chain_of_consumer_dependencies_fails_too(seven: Template) -> None:
    """Consumer i DependsOn consumer i - 5 (the template before this fix): CREATE_COMPLETE
    is not ACTIVE, so the 6th still meets 5 CREATING."""
    chained = _without_waiters(seven)
    ids = _consumers(chained)
    for earlier, later in zip(ids, ids[5:], strict=False):
        chained["Resources"][later]["DependsOn"] = [earlier]
    with pytest.raises(LimitExceededError):
        _provision(chained, "Seven-chain")
