"""The VTL engine: API Gateway's $util, $input and Java string methods on airspeed."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.infrastructure.templates import STREAM_TEMPLATE
from pipeline.infrastructure.templates import render as render_template
from pipeline.local import vtl
from pipeline.local.patches.airspeed_methods import null_loader, template_namespace


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        # Commons Lang 2 StringEscapeUtils javadoc and StringEscapeUtilsTest expectations.
        ('He didn\'t say, "Stop!"', 'He didn\\\'t say, \\"Stop!\\"'),
        (
            "document.getElementById(\"test\").value = '<script>alert('aaa');</script>';",
            "document.getElementById(\\\"test\\\").value = \\'<script>alert(\\'aaa\\');"
            "<\\/script>\\';",
        ),
        ("\b\t\n\f\r", "\\b\\t\\n\\f\\r"),
        ("\x00\x01\x1f", "\\u0000\\u0001\\u001F"),
        ("\x7f", "\x7f"),
        ("\x80\xe9\u00ff", "\\u0080\\u00E9\\u00FF"),
        ("\u1234\uabcd\u2028", "\\u1234\\uABCD\\u2028"),
        ("😀", "\\uD83D\\uDE00"),
        ("a\\b/c", "a\\\\b\\/c"),
        ("plain ASCII 0-9 ~!@#$%^&*()", "plain ASCII 0-9 ~!@#$%^&*()"),
    ],
)
def test_escape_javascript_matches_commons_lang(raw: str, escaped: str) -> None:
    assert vtl.escape_javascript(raw) == escaped


def _render(template: str, body: str = "", **context: object) -> str:
    return vtl.render(template, body=body, context=context, stage_variables={"env": "test"})


def test_input_json_and_path_follow_the_jsonpath_subset() -> None:
    body = '{"action":"echo","data":{"list":[10,{"k":"v"}],"s":"x\\"y"}}'
    assert _render("$input.json('$.data.list')", body) == '[10,{"k":"v"}]'
    assert _render("$input.json('$.data.list[1]')", body) == '{"k":"v"}'
    assert _render("$input.path('$.action')", body) == "echo"
    assert _render("$input.path('$.data.list[0]')", body) == "10"
    assert _render("$input.path('$.data.s')", body) == 'x"y'
    assert _render("$input.json('$.missing')", body) == ""
    assert _render("#if($input.path('$.data.list').size() == 2)two#end", body) == "two"
    assert _render("$input.json('$')", body) == body
    assert _render("$input.body", body) == body


def test_path_on_a_non_json_body_is_a_render_error() -> None:
    with pytest.raises(vtl.VtlRenderError, match="not valid JSON"):
        _render("$input.path('$.a')", "not json")


def test_util_functions() -> None:
    assert _render("$util.base64Encode('héllo')") == "aMOpbGxv"
    assert _render("$util.base64Decode('aMOpbGxv')") == "héllo"
    assert _render("$util.urlEncode('a b&c=d/é*')") == "a+b%26c%3Dd%2F%C3%A9*"
    assert _render("$util.urlDecode('a+b%26c')") == "a b&c"
    assert _render("$util.parseJson('{\"a\":[1,2]}').a.size()") == "2"
    assert _render("$stageVariables.env") == "test"


def test_context_values_and_absent_authorizer() -> None:
    assert _render("$context.connectionId|$!{context.authorizer.principalId}|", connectionId="C=") \
        == "C=||"


def test_java_string_methods() -> None:
    template = (
        "#set($s = ' Hello, World ')"
        "$s.trim().toLowerCase()|$s.replace('o', '0')|$s.replaceAll('(l+)', '[$1]')|"
        "$s.split(',').size()|$s.indexOf('z')|$s.isEmpty()|$s.length()|$s.trim().endsWith('d')"
    )
    assert _render(template) == (
        "hello, world| Hell0, W0rld | He[ll]o, Wor[l]d |2|-1|false|14|true"
    )
    # AWS's documented escapeJavaScript fix: the literal "\\'" is the Java regex backslash-quote.
    assert _render("""$util.escapeJavaScript("it's").replaceAll("\\\\'", "'")""") == "it's"


def test_templates_are_compiled_once() -> None:
    text = "$context.routeKey #* cache probe *#"
    assert vtl.compile_template(text) is vtl.compile_template(text)


def test_syntax_error_is_a_vtl_error() -> None:
    with pytest.raises(vtl.VtlSyntaxError):
        _render("#if($a")


def test_escape_javascript_escapes_every_character_as_its_own_escape() -> None:
    # The translate table + non-ASCII regex must agree with the per-character definition.
    text = "".join(chr(c) for c in range(0x10000)) + "😀𝄞\U0010ffff"
    expected = "".join(vtl._escape_char(ch) for ch in text)
    assert vtl.escape_javascript(text) == expected
    assert vtl.escape_javascript("a'b\"c") == "a\\'b\\\"c"


def test_json_values_render_as_java_objects_as_velocity_does() -> None:
    # What the Velocity 1.7 oracle (test_velocity_oracle.py) showed: Map/List toString, not repr.
    body = '{"a":[1,true,null,{"b":"x y"}],"c":false}'
    assert _render("$input.path('$')", body) == "{a=[1, true, null, {b=x y}], c=false}"
    assert _render("$util.parseJson($input.body).a", body) == "[1, true, null, {b=x y}]"
    assert _render("$input.path('$.a').size()|$input.path('$').keySet()", body) == "4|[a, c]"


def test_a_lone_surrogate_is_a_question_mark_in_base64_and_url_encoding() -> None:
    # Java's String.getBytes(UTF_8) replaces it with "?"; a JSON "\ud800" escape can produce one.
    body = '{"s":"\\ud800"}'
    assert _render("$util.base64Encode($input.path('$.s'))", body) == "Pw=="
    assert _render("$util.urlEncode($input.path('$.s'))", body) == "%3F"


# --- constant references folded at compile time --------------------------------------------------
def _both(text: str, body: str = "{}", context: dict[str, Any] | None = None) -> tuple[str, str, int]:
    """(folded render, airspeed's plain render, references folded) of one template."""
    import airspeed

    plain, folded = airspeed.Template(text), airspeed.Template(text)
    plain.ensure_compiled()
    folded.ensure_compiled()
    count = vtl.fold_constants(folded)

    def merge(template: Any) -> str:
        namespace = template_namespace({"input": vtl.ApiInput(body, None), "util": vtl.ApiUtil(),
                                        "context": context or {}, "stageVariables": {}})
        return str(template.merge(namespace, null_loader()))

    return merge(folded), merge(plain), count


@pytest.mark.parametrize(("text", "folded"), [
    # set once, at the top, to a single-quoted literal: its output references are folded
    ("#set($q = '\"')\"${q}a${q}\" $q $!q #if($q == '\"')yes#end", 4),
    # a reference before the #set is not (it renders before the value exists)
    ("$q #set($q = 'x')$q", 1),
    # set twice (here inside #if): never folded
    ("#set($q = 'x')$q#if(true)#set($q = 'y')#end$q", 0),
    # an interpolated literal, a method call, a property, a default: looked up as parsed
    ("#set($q = \"$context.a\")$q #set($r = 'ab')$r.length() ${r.x} ${r|'d'}", 0),
    # a directive that binds names: the template is left as parsed
    ("#set($q = 'x')#foreach($q in [1, 2])$q#end$q", 0),
])
def test_folding_constants_renders_exactly_what_airspeed_renders(text: str, folded: int) -> None:
    got, plain, count = _both(text, context={"a": "A"})
    assert got == plain
    assert count == folded


def test_the_frame_template_s_quotes_are_folded_and_its_envelope_is_unchanged() -> None:
    text = render_template(STREAM_TEMPLATE, {"STREAM_NAME": "s"})
    hostile = '{"a":"\\"\'</script>\\u2028\U0001f600","b":[1,2]}'
    got, plain, count = _both(text, hostile, {
        "routeKey": "$default", "eventType": "MESSAGE", "connectionId": "c=", "requestId": "r",
        "messageId": "m", "requestTimeEpoch": 1, "stage": "dev",
        "identity": {"sourceIp": "1.2.3.4"}, "authorizer": {"principalId": "u'1"}})
    assert got == plain
    assert count >= 40  # every ${q} of the envelope
