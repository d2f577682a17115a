"""Lambda code of the ``$connect`` token authorizer (a code asset: stdlib + boto3 from the runtime)."""
