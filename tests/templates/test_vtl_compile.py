"""The compiled render (pipeline/local/vtl_compile.py): airspeed's output, and compiled for real.

Every render of tests/templates goes through conftest.py's differential check (compiled plan vs
airspeed alone); the cases here add the node kinds and value rules the product's templates do not
reach, and pin that the templates the product renders per frame are compiled whole.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from pipeline.infrastructure.templates import TEMPLATES_DIR
from pipeline.infrastructure.templates import render as render_template
from pipeline.local import vtl, vtl_compile

PLACEHOLDERS = {"STREAM_NAME": "s", "TABLE_NAME": "t", "CONNECTION_TTL_SECONDS": "10800",
                "RETRYABLE_BY_STATUS": "false"}
TEMPLATE_NAMES = sorted(path.name for path in TEMPLATES_DIR.glob("*.vtl"))
CONTEXT: dict[str, Any] = {
    "connectionId": "C=", "requestId": "R=", "eventType": "MESSAGE", "routeKey": "echo",
    "n": 3, "zero": 0, "flag": True, "off": False, "none": None, "empty": "",
    "list": ["a", "b", None], "map": {"k": "v", "nested": {"x": [1, 2]}},
    "replace": "__FORMAL_REFERENCE__REPLACE_TEXT__", "pi": 3.5,
}
BODY = '{"a":{"b":[1,{"c":"d"}]},"s":"x\'y","n":7,"t":true,"z":null}'

CASES = [
    # references: silent, braces, alternate values, unknown names, REPLACE_FORMAL_TEXT, None
    "$context.connectionId|$!context.absent|${context.absent}|$!{context.absent}|$nothing",
    "${context.absent|'alt'}|${context.zero|'alt'}|${context.none|$context.n}|${context.empty|0}",
    "$context.replace|${context.replace}|$context.none|$context.flag|$context.off|$context.pi",
    "$context.list|$context.map|$context.map.nested.x|$context.list[1]|$context.list[5]",
    "$context.map['k']|$context.map.k.length()|$context.list.size()|$context.map.keySet()",
    "$context.connectionId.substring(1)|$context.connectionId.toLowerCase()|$context.n.foo",
    "$input.path('$.a').b[1].c|$input.path('$.a.b').get(0)|$input.json('$.a')|$input.path('$.z')",
    "$input.path('$.a.b')[0]|$input.path('$.s').replaceAll(\"'\", '-')|$input.body.length()",
    "$input.params()|$input.params('x')|$util.urlEncode('a b')|$stageVariables.env|$util",
    "$context.length|$context.list.size|$context.connectionId.length",
    # literals and interpolation
    '#set($a = "x${context.n}y$!{context.absent}z")$a|#set($b = \'$raw\')$b|#set($c = "")[$c]',
    '#set($a = 1)#set($b = 2.5)#set($c = true)#set($d = null)$a|$b|$c|$d|#set($e = [1, 2])$e',
    '#set($m = {"k": 1})$m|#set($r = [1..3])$r|$context.list.get(0)|#set($x = "a""b")$x',
    # #set of None keeps nothing (airspeed sets None), set then reuse in expressions
    "#set($a = 'kept')#set($a = $nothing)[$a]#set($a = $context.none)[$!a]",
    "#set($q = '\"')${q}x${q}#set($q2 = $q)$q2",
    # #if / #elseif / #else, operators, precedence, non-short-circuit evaluation
    "#if($context.n == 3)three#elseif($context.n == 4)four#{else}other#end",
    "#if($context.n > 5)big#elseif($context.n >= 3)mid#else small#end",
    "#if($context.absent)a#end#if($context.none)n#end#if(!$context.flag)nf#end#if($context.empty)e#end",
    "#if($context.zero || $context.flag && $context.off)x#else y#end",
    "#if($context.n == 3 || $context.n == 4 && $context.flag)x#end#if(($context.n + 1) * 2 == 8)y#end",
    "#if($context.n - 1 / 2 == 3)a#end#if($context.n % 2 != 0 and not $context.off)b#end",
    "#if($context.connectionId.startsWith('C'))c#end#if($context.list.contains('a'))l#end",
    "#set($t = $context.n * 2 + 1)$t#set($u = \"$t\" + 'x')$u",
    "#if($context.connectionId eq 'C=' && $context.n lt 4 && $context.n ge 3)ok#end",
    # failures: both engines fail the same way
    "$input.path('x')",
    "$util.parseJson('{bad')",
    "$context.list[$context.map]",
    "#set($a = $context.n / 0)",
    # refused: #foreach, a mutating call
    "#foreach($x in $context.list)$x,#end",
    "$context.map.put('k', 2)$context.map.k",
    "#macro(m $a)<$a>#end#m('z')",
    # comments, escapes, hash text
    "a## comment\nb#* block *#c \\$x \\#if #ff0000 $ 100 $1",
]


@pytest.mark.parametrize("template", CASES)
def test_compiled_render_equals_airspeed(template: str) -> None:
    # conftest.py's differential check runs inside vtl.render
    with contextlib.suppress(vtl.VtlError):
        vtl.render(template, body=BODY, context=CONTEXT, stage_variables={"env": "e"},
                   params={"querystring": {"x": "1"}})


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_integration_template_is_compiled_without_fallback(name: str) -> None:
    text = render_template(name, PLACEHOLDERS)
    assert vtl_compile.refusal(vtl.compile_template(text)) is None
    plan = vtl.compiled_template(text)
    assert plan is not None
    assert plan.top_fallbacks == []  # so the speed-up cannot silently vanish
    assert plan.nested_fallbacks == []


def test_the_frame_template_renders_compiled() -> None:
    text = render_template("stream_put_record.vtl", PLACEHOLDERS)
    plan = vtl.compiled_template(text)
    assert plan is not None
    namespace = vtl.request_namespace('{"action":"echo"}', {**CONTEXT, "messageId": "M="})
    out = plan.render(namespace)  # no Fallback, no error
    assert out == vtl.render(text, body='{"action":"echo"}', context={**CONTEXT, "messageId": "M="},
                             compiled=False)


def test_a_failed_compiled_render_is_airspeed_s_error() -> None:
    text = "#set($a = 'x')$input.path('$.a')"
    with pytest.raises(vtl.VtlRenderError, match="not valid JSON"):
        vtl.render(text, body="not json", context={})
    assert vtl.compiled_template(text) is not None


def test_refused_templates_render_with_airspeed() -> None:
    assert vtl.compiled_template("#foreach($x in [1])$x#end") is None
    assert vtl.compiled_template("$context.put('a', 1)") is None
    assert vtl.compiled_template("#set($context.a = 1)") is None
    assert vtl.render("#foreach($x in [1, 2])$x#end", body="", context={}) == "12"
