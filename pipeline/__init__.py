"""Serverless WebSocket pipeline: API Gateway -> VTL -> Kinesis -> enhanced fan-out consumers."""
