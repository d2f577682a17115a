"""ConnectionRoster: the DynamoDB table of connections and room memberships."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

TTL_ATTRIBUTE = "expiresAt"
# Sparse index: the META items of authenticated connections by principal (send to a user).
PRINCIPAL_INDEX = "byPrincipal"
PRINCIPAL_ATTRIBUTE = "principalKey"


class ConnectionRoster(Construct):
    """``pk``/``sk`` string keys, on demand, encrypted, point-in-time recovery, TTL ``expiresAt``,
    and the sparse ``byPrincipal`` index (``principalKey`` -> the connection's META item)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            global_secondary_indexes=[dynamodb.GlobalSecondaryIndexPropsV2(
                index_name=PRINCIPAL_INDEX,
                partition_key=dynamodb.Attribute(name=PRINCIPAL_ATTRIBUTE,
                                                 type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            )],
            removal_policy=RemovalPolicy.DESTROY,
        )
