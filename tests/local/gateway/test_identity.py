"""identity.py: which identity sources a connect lacks (pure, no I/O)."""

from __future__ import annotations

from pipeline.local.gateway.identity import identity_sources, missing_identity_sources


def test_identity_source_accepts_a_list_a_comma_string_or_nothing() -> None:
    assert identity_sources(["route.request.querystring.token"]) == (
        "route.request.querystring.token",)
    assert identity_sources("route.request.header.Auth, route.request.querystring.Name") == (
        "route.request.header.Auth", "route.request.querystring.Name")
    assert identity_sources([]) == ()
    assert identity_sources(None) == ()


def test_missing_means_absent_or_empty_headers_ignore_case() -> None:
    sources = ("route.request.header.Auth", "route.request.querystring.token",
               "stageVariables.key", "context.identity.sourceIp")
    assert missing_identity_sources(
        sources, headers={"auth": "x"}, query={"token": "t"}, stage_variables={"key": "k"}) == ()
    assert missing_identity_sources(
        sources, headers={"Auth": ""}, query={}, stage_variables={}) == sources[:3]
    assert missing_identity_sources(
        ("route.request.querystring.Token",), headers={}, query={"token": "t"},
        stage_variables={}) == ("route.request.querystring.Token",)  # query names are exact
