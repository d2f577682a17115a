"""What every function of the stack shares: runtime, architecture and a template fix."""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

RUNTIME = lambda_.Runtime.PYTHON_3_12  # the shared layer's wheels are built for CPython 3.12
ARCHITECTURE = lambda_.Architecture.ARM_64


def drop_redundant_role_dependency(function: lambda_.Function) -> None:
    """Keep ``DependsOn`` on the role's policy only (cfn-lint W3005).

    ``Function`` always depends on its whole role construct; the ``Role`` GetAtt already orders
    the function after the role itself, so listing it again is redundant. The policy must stay:
    the function may be invoked (e.g. by its event source mapping) as soon as it exists.
    Call it after the last grant to the role: the policies are read now. A role without a
    policy leaves no ``DependsOn`` at all (never an empty list).
    """
    cfn_function = function.node.default_child
    role = function.role
    if not isinstance(cfn_function, CfnResource) or not isinstance(role, iam.Role):
        return
    stack = Stack.of(function)
    policies = [
        stack.get_logical_id(child)
        for child in role.node.find_all()
        if isinstance(child, iam.CfnPolicy)
    ]
    if policies:
        cfn_function.add_override("DependsOn", policies)
    else:
        cfn_function.add_deletion_override("DependsOn")
