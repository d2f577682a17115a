"""The compiled plan renders exactly what airspeed's interpreter renders (differential tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_stream_put_record import CONTEXT, HOSTILE_FRAMES

from pipeline.local import vtl, vtl_compiled

TEMPLATES = Path(__file__).resolve().parents[2] / "integration_templates"
PLACEHOLDERS = {"@@STREAM_NAME@@": "ws-stream", "@@TABLE_NAME@@": "roster",
                "@@CONNECTION_TTL_SECONDS@@": "10800", "@@RETRYABLE_BY_STATUS@@": "false"}


def _template(name: str) -> str:
    text = (TEMPLATES / name).read_text()
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def _both(text: str, body: str, context: dict[str, Any]) -> tuple[str, str]:
    """(plan's output, interpreter's output); the plan runs bare, with no fallback.

    When airspeed fails, the bare plan must fail too, and render() must give airspeed's error.
    """
    plan = vtl_compiled.plan(vtl.compile_template(text))
    assert plan is not None, "expected a compiled plan"
    namespace = {"input": vtl.ApiInput(body, {"header": {"Host": "h"}}), "util": vtl.ApiUtil(),
                 "context": context, "stageVariables": {"env": "test"}}

    def rendered(interpreted: bool) -> str:
        return vtl.render(text, body=body, context=context, stage_variables={"env": "test"},
                          params={"header": {"Host": "h"}}, interpreted=interpreted)

    try:
        interpreted = rendered(True)
    except vtl.VtlError as exc:
        with pytest.raises(Exception):  # noqa: B017 - any exception: render() re-runs airspeed
            plan(namespace, vtl._LOADER)
        with pytest.raises(type(exc)) as again:
            rendered(False)
        assert str(again.value) == str(exc)
        return "error", "error"
    return plan(namespace, vtl._LOADER), interpreted


CONTEXTS: list[dict[str, Any]] = [
    CONTEXT,
    {**CONTEXT, "authorizer": {"principalId": "it's \"me\" \u2028 😀"}},
    {**CONTEXT, "eventType": "DISCONNECT", "routeKey": "$disconnect", "disconnectStatusCode": 1001},
    {**CONTEXT, "eventType": "DISCONNECT", "routeKey": "$disconnect"},
    {**CONTEXT, "eventType": "CONNECT", "routeKey": "$connect", "domainName": None},
    {"connectionId": "only", "connectedAt": "1700000000000"},
]


@pytest.mark.parametrize("name", ["stream_put_record.vtl", "connect_put_item.vtl"])
@pytest.mark.parametrize("frame", HOSTILE_FRAMES, ids=range(len(HOSTILE_FRAMES)))
def test_request_templates_match_the_interpreter(name: str, frame: str) -> None:
    for context in CONTEXTS:
        compiled, interpreted = _both(_template(name), frame, context)
        assert compiled == interpreted


@pytest.mark.parametrize("body", [
    '{"ShardId":"shardId-000000000001","SequenceNumber":"4959"}',
    '{"__type":"com.amazonaws.kinesis#ProvisionedThroughputExceededException","message":"x"}',
    '{"__type":"ResourceNotFoundException:http://internal.amazon.com/"}',
    '{"__type":"it\'s \\"odd\\""}',
    "{}",
    '{"__type":null,"ShardId":7}',
])
@pytest.mark.parametrize("name", ["stream_ack_response.vtl", "stream_nack_response.vtl"])
def test_response_templates_match_the_interpreter(name: str, body: str) -> None:
    compiled, interpreted = _both(_template(name), body, CONTEXT)
    assert compiled == interpreted


CORPUS = [
    "plain text only",
    "$context.connectionId ${context.connectionId} $!context.missing ${context.missing}",
    "$context.identity.sourceIp.length() $context.identity.missing.deeper",
    "${context.missing|'alt'} ${context.routeKey|'alt'} $missing.toString()",
    "$context.routeKey.replaceAll('(\\w+)', 'x$1y').toUpperCase() $context.stage.indexOf('z')",
    "$context.stage.substring(1) $context.stage.startsWith('d') $context.stage.split('e')",
    "#set($a = 1 + 2 * 3 - 4 / 2)$a #set($b = (1 + 2) * 3)$b #set($c = 7 % 4)$c",
    "#set($s = 'x' + 1)$s #set($t = 1 + 'x')$t",
    "#if($context.eventType == 'MESSAGE' && $context.stage != 'prod' || false)A#else B#end",
    "#if($missing)undefined-is-true#end #if(!$missing)neg#end #if($context.no == $null)eq#end",
    "#if(1 > 2)a#elseif(2 >= 2)b#elseif(true)c#else d#end #if(3 lt 4 and 5 ge 5)e#end",
    "#set($m = {'k': 'v', 'n': [1, 2, {'deep': true}]})$m.k $m.n[2].deep $m.n.size() $m.n[0]",
    "#set($m = {})#set($m.k = 'v')#set($m['j'] = 'w')$m.k$m.j $m.keySet().size()",
    "#foreach($x in [1..3])$x:$velocityCount:$foreach.hasNext #end",
    "#foreach($k in $context.identity)$k=$context.identity.get($k);#end",
    "#set($l = [])#set($ignore = $l.add('a'))$l $l.isEmpty() $l.contains('a')",
    "$input.json('$') $input.json('$.action') $input.path('$.data') $input.body.length()",
    "$input.params('Host') $input.params() $stageVariables.env $stageVariables.none",
    "$util.escapeJavaScript($input.body) $util.base64Encode($input.body) $util.urlEncode('a b')",
    "#set($o = $util.parseJson('{\"a\":[1,2]}'))$o.a[1] $o.a.get(0)",
    '#set($q = \'"\')"inner ${q}quoted${q} $context.stage" and ""doubled""',
    "#set($x = \"interp $context.stage ${context.routeKey}\")$x.length() $x",
    "## a comment\n#* block\ncomment *#after\n#set($z = 1)\n$z\n",
    "#set($n = $null)[$n] #set($n = 'kept')#set($n = $context.missing)[$n]",
    "$context.connectedAt $context.requestTimeEpoch $true $false ${context.connectedAt}",
    "price: $5 and 50% #notadirective \\$escaped \\#set",
    "#if($context.stage == 'dev')#set($r = 'd')#elseif($context.stage == 'x')#set($r = 'x')#end$r",
    "$context.routeKey.equals('$default') $context.routeKey.equalsIgnoreCase('$DEFAULT')",
    "#set($i = 0)#foreach($c in ['a', 'b'])#set($i = $i + 1)#end$i",
]


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_constructs_match_the_interpreter(text: str) -> None:
    compiled, interpreted = _both(text, '{"action":"echo","data":{"x":[1,"two"]}}', CONTEXT)
    assert compiled == interpreted


@pytest.mark.parametrize("text", [
    "#macro(hi $n)hello $n#end#hi('x')",
    "#define($d)defined#end$d",
    "before#stop after",
    "#evaluate('$context.stage')",
])
def test_flow_control_and_definitions_are_left_to_airspeed(text: str) -> None:
    assert vtl_compiled.plan(vtl.compile_template(text)) is None
    assert vtl.render(text, body="", context=CONTEXT) == vtl.render(
        text, body="", context=CONTEXT, interpreted=True)


def test_errors_are_airspeeds_errors() -> None:
    text = "ok $input.path('$.a') $util.parseJson('not json')"
    with pytest.raises(vtl.VtlRenderError) as compiled:
        vtl.render(text, body="{not json", context=CONTEXT)
    with pytest.raises(vtl.VtlRenderError) as interpreted:
        vtl.render(text, body="{not json", context=CONTEXT, interpreted=True)
    assert str(compiled.value) == str(interpreted.value)
    assert "the body is not valid JSON" in str(compiled.value)
