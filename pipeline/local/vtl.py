"""API Gateway mapping templates (VTL) rendered with airspeed-ext, as API Gateway renders them.

API Gateway's variables are implemented per
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-mapping-template-reference.html
and https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html:
``$input`` (body, json, path, params), ``$util`` (escapeJavaScript, base64Encode/Decode,
urlEncode/Decode, parseJson), ``$context`` (a plain nested dict built by the caller) and
``$stageVariables``.

Templates are parsed by airspeed once and cached by their text (parsing costs ~1 ms). One
rewrite of the parse tree, :func:`fold_constants`, writes the references of a variable set once
to a single-quoted literal as that text (the frame template's 46 ``${q}``). The folded tree is then
compiled to Python closures (:mod:`pipeline.local.vtl_compile`, :func:`compiled_template`) that
do what airspeed's evaluation does, node for node, with airspeed itself evaluating any node the
compiler leaves to it; a compiled render that raises is rendered again by airspeed, whose error is
the one reported. The frame template renders in ~25 µs instead of ~95 µs
(``python -m loadtest.bench_vtl``); tests/templates/conftest.py checks every render of the
template tests, the Velocity 1.7 oracle's corpus included, against airspeed alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import airspeed
import airspeed.operators as ops

from pipeline.local import vtl_compile
from pipeline.local.errors import TwinError
from pipeline.local.patches.airspeed_methods import add_methods, null_loader, template_namespace

__all__ = [
    "ApiInput",
    "ApiUtil",
    "JavaList",
    "JavaMap",
    "VtlError",
    "VtlRenderError",
    "VtlSyntaxError",
    "compile_template",
    "compiled_template",
    "escape_javascript",
    "java_string",
    "json_path",
    "render",
    "request_namespace",
]


class VtlError(TwinError):
    """Base of every VTL engine error.

    VtlError
    +-- VtlSyntaxError   the template does not parse
    +-- VtlRenderError   rendering failed (bad JSONPath, body not JSON where a path needs it...)
    """


class VtlSyntaxError(VtlError):
    """The template text does not parse."""


class VtlRenderError(VtlError):
    """The template parsed but rendering it failed."""


# --- $util.escapeJavaScript ------------------------------------------------------------------

_JS_ESCAPES = {
    "'": "\\'",
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\n": "\\n",
    "\t": "\\t",
    "\f": "\\f",
    "\r": "\\r",
}


def _escape_char(ch: str) -> str:
    special = _JS_ESCAPES.get(ch)
    if special is not None:
        return special
    code = ord(ch)
    if code < 0x20 or code > 0x7F:
        if code > 0xFFFF:
            # Java strings are UTF-16: an astral character is escaped as its surrogate pair.
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
        return f"\\u{code:04X}"
    return ch


# ASCII escapes by one str.translate; only text with non-ASCII characters then needs the regex.
_ASCII_ESCAPES = {c: _escape_char(chr(c)) for c in range(0x80) if _escape_char(chr(c)) != chr(c)}
_NON_ASCII = re.compile("[\x80-\U0010ffff]")


def _escape_match(match: re.Match[str]) -> str:
    return _escape_char(match.group())


def escape_javascript(text: str) -> str:
    """``$util.escapeJavaScript``: Apache Commons Lang 2 ``StringEscapeUtils.escapeJavaScript``.

    Escapes ``'`` as ``\\'``, ``"``, ``\\`` and ``/`` with a backslash, \\b \\t \\n \\f \\r by name,
    other control characters and every character above 0x7F as ``\\uXXXX`` (uppercase hex, astral
    characters as a UTF-16 surrogate pair). DEL (0x7F) passes through, as in Commons Lang.
    The ``\\'`` is not valid JSON, hence AWS's documented ``.replaceAll("\\\\'","'")``.
    """
    escaped = text.translate(_ASCII_ESCAPES)
    return escaped if escaped.isascii() else _NON_ASCII.sub(_escape_match, escaped)


# --- Java String methods templates call --------------------------------------------------------

_JAVA_GROUP_REF = re.compile(r"\\(.)|\$(\d+|\{\w+\})")


def _java_replacement(repl: str) -> Callable[[re.Match[str]], str]:
    """A java.util.regex replacement string (``$1``, ``${name}``, ``\\$``) as a Python callable."""

    def expand(match: re.Match[str]) -> str:
        def one(ref: re.Match[str]) -> str:
            if ref.group(1) is not None:
                return ref.group(1)
            group = ref.group(2).strip("{}")
            value = match.group(int(group) if group.isdigit() else group)
            return value or ""

        return _JAVA_GROUP_REF.sub(one, repl)

    return expand


def _java_split(text: str, pattern: str, limit: int = 0) -> list[str]:
    parts = re.split(pattern, text, maxsplit=limit - 1 if limit > 0 else 0)
    if limit == 0:
        while parts and parts[-1] == "":
            parts.pop()  # Java drops trailing empty strings when limit is 0
    return parts


def _index_of(text: str, sub: str, start: int = 0) -> int:
    return text.find(sub, start)


@lru_cache(maxsize=256)
def _java_regex(pattern: str, repl: str) -> tuple[re.Pattern[str], str | Callable[..., str]]:
    """The compiled pattern and the replacement (a plain string when it has no ``$`` or ``\\``)."""
    plain = "$" not in repl and "\\" not in repl
    return re.compile(pattern), repl if plain else _java_replacement(repl)


def _replace(text: str, pattern: str, repl: str, count: int = 0) -> str:
    regex, replacement = _java_regex(pattern, repl)
    return regex.sub(replacement, text, count=count)


_JAVA_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "replaceAll": lambda s, p, r: _replace(s, p, r),
    "replaceFirst": lambda s, p, r: _replace(s, p, r, count=1),
    "replace": lambda s, old, new: s.replace(str(old), str(new)),
    "indexOf": _index_of,
    "lastIndexOf": lambda s, sub: s.rfind(sub),
    "toLowerCase": lambda s: s.lower(),
    "toUpperCase": lambda s: s.upper(),
    "isEmpty": lambda s: len(s) == 0,
    "split": _java_split,
    "trim": lambda s: s.strip("".join(chr(c) for c in range(0x21))),
    "endsWith": lambda s, suffix: s.endswith(suffix),
    "equals": lambda s, other: s == other,
    "equalsIgnoreCase": lambda s, other: isinstance(other, str) and s.lower() == other.lower(),
    "charAt": lambda s, i: s[i],
    "toString": lambda s: s,
    "concat": lambda s, other: s + other,
}
# airspeed looks methods up in a module-level table (patches/airspeed_methods.py); it already has length, startsWith,
# contains, substring and matches. Ours replace replaceAll (Java "$1" replacements) and indexOf
# (-1 when absent, not a Python ValueError).
add_methods(str, _JAVA_STRING_METHODS)


# --- JSON values as the Java objects API Gateway's templates see ---------------------------------


def java_string(value: Any) -> str:
    """``String.valueOf`` of a JSON value: null, true and false in Java's spelling."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class JavaMap(dict[str, Any]):
    """A JSON object from ``$input.path``/``$util.parseJson``: renders as ``java.util.Map``
    (``{a=1, b=[x, true]}``), as API Gateway's Velocity does, not as a Python repr."""

    def __str__(self) -> str:
        return "{" + ", ".join(f"{k}={java_string(v)}" for k, v in self.items()) + "}"


class JavaList(list[Any]):
    """A JSON array from ``$input.path``/``$util.parseJson``: renders as ``java.util.List``."""

    def __str__(self) -> str:
        return "[" + ", ".join(java_string(v) for v in self) + "]"


# airspeed finds methods by the exact class: the Java views get dict's and list's tables plus the
# java.util.Map methods airspeed lacks (keySet() as a List, which renders as Java's "[a, b]").
add_methods(JavaMap, {
    "size": len,
    "isEmpty": lambda m: len(m) == 0,
    "containsKey": lambda m, key: key in m,
    "keySet": lambda m: JavaList(m.keys()),
    "toString": str,
}, like=dict)
add_methods(JavaList, {"toString": str}, like=list)


def _java_value(value: Any) -> Any:
    if isinstance(value, dict):
        return JavaMap((k, _java_value(v)) for k, v in value.items())
    if isinstance(value, list):
        return JavaList(_java_value(v) for v in value)
    return value


# --- $input and $util --------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def json_path(document: Any, path: str) -> Any:
    """Evaluate the JSONPath subset templates use: ``$``, ``$.a.b``, ``$.a[0]``, ``$['a b']``.

    A missing key or index gives None (API Gateway renders it as empty).
    """
    path = path.strip()
    if not path.startswith("$"):
        raise VtlRenderError(f"invalid JSONPath {path!r}: must start with $")
    pos, value = 1, document
    while pos < len(path):
        match = _PATH_TOKEN.match(path, pos)
        if match is None:
            raise VtlRenderError(f"unsupported JSONPath {path!r} at offset {pos}")
        pos = match.end()
        key, index, quoted1, quoted2 = match.groups()
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            name = key if key is not None else (quoted1 if quoted1 is not None else quoted2)
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


class ApiInput:
    """``$input``: the request payload and parameters."""

    def __init__(self, body: str, params: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.body = body
        self._params = params or {}
        self._parsed: Any = None
        self._parsed_ok = False

    def _document(self) -> Any:
        if not self._parsed_ok:
            try:
                self._parsed = json.loads(self.body) if self.body else None
            except ValueError as exc:
                raise VtlRenderError(f"the body is not valid JSON: {exc}") from exc
            self._parsed_ok = True
        return self._parsed

    def json(self, path: str) -> str:
        """``$input.json(path)``: the JSON text of the value at *path* ("" if absent)."""
        value = json_path(self._document(), path)
        return "" if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def path(self, path: str) -> Any:
        """``$input.path(path)``: the value at *path* as an object templates can navigate."""
        return _java_value(json_path(self._document(), path))

    def params(self, name: str | None = None) -> Any:
        """``$input.params()`` / ``$input.params(name)``: path, querystring then header lookup."""
        if name is None:
            return {k: dict(v) for k, v in self._params.items()}
        for kind in ("path", "querystring", "header"):
            value = self._params.get(kind, {}).get(name)
            if value is not None:
                return value
        return ""


class ApiUtil:
    """``$util``: API Gateway's helper functions (camelCase: the names templates call)."""

    @staticmethod
    def escapeJavaScript(text: Any) -> str | None:
        return None if text is None else escape_javascript(str(text))

    @staticmethod
    def base64Encode(text: Any) -> str:
        # "replace": a lone surrogate (from a JSON \ud800 escape) becomes "?", as Java's
        # String.getBytes(UTF_8) does, instead of failing the render.
        return base64.b64encode(str(text or "").encode("utf-8", "replace")).decode("ascii")

    @staticmethod
    def base64Decode(text: Any) -> str:
        try:
            return base64.b64decode(str(text or ""), validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError) as exc:
            raise VtlRenderError(f"$util.base64Decode: invalid input: {exc}") from exc

    @staticmethod
    def urlEncode(text: Any) -> str:
        # java.net.URLEncoder: space as "+", and only A-Za-z0-9 . - * _ left as they are.
        return urllib.parse.quote_plus(str(text or ""), safe="*", errors="replace")

    @staticmethod
    def urlDecode(text: Any) -> str:
        return urllib.parse.unquote_plus(str(text or ""))

    @staticmethod
    def parseJson(text: Any) -> Any:
        try:
            return _java_value(json.loads(str(text)))
        except ValueError as exc:
            raise VtlRenderError(f"$util.parseJson: invalid JSON: {exc}") from exc


_UTIL = ApiUtil()


# --- compile and render -----------------------------------------------------------------------


@lru_cache(maxsize=256)
def compile_template(text: str) -> airspeed.Template:
    """Parse *text* once; later calls with the same text return the cached compiled template."""
    template = airspeed.Template(text)
    try:
        template.ensure_compiled()
    except airspeed.TemplateSyntaxError as exc:
        raise VtlSyntaxError(str(exc)) from exc
    fold_constants(template)
    return template


# --- constant references ----------------------------------------------------------------------
# The frame template puts a quote in $q (#set($q = '"'), see integration_templates/) and writes
# ${q} 46 times: airspeed looks each one up through four nodes and the namespace, ~0.9 µs each,
# a third of the frame's render. A variable set exactly once in the whole template, by a
# top-level #set of a single-quoted (never interpolated) literal, holds that text from there on:
# its plain references in output position after that #set are replaced by the text itself.
# Expressions (#if, method arguments) still look it up. Templates with directives that bind or
# re-enter names (#foreach, #macro, #define, #evaluate, #parse, #include) are left as parsed.

_BINDING = (ops.ForeachDirective, ops.MacroDefinition, ops.DefineDefinition, ops.MacroCall,
            ops.EvaluateDirective, ops.IncludeDirective, ops.ParseDirective,
            ops.UserDefinedDirective)


class _ConstantText:
    """A reference replaced by the constant it always renders."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def evaluate(self, stream: Any, namespace: Any, loader: Any) -> None:
        stream.write(self.text)


def _constant_set(element: Any) -> tuple[str, str] | None:
    """(name, text) of ``#set($name = 'text')``, else None."""
    if not isinstance(element, ops.SetDirective):
        return None
    assignment = element.assignment
    terms = assignment.value.expression
    if assignment.terms or len(terms) != 1:
        return None
    literal = terms[0].expression
    if type(literal) is not ops.StringLiteral:  # single-quoted: never interpolated
        return None
    return assignment.root_term, literal.value


def _plain_reference(element: Any) -> str | None:
    """The name of ``$name``, ``$!name`` or ``${name}`` (no call, index, property or default)."""
    if not isinstance(element, ops.FormalReference) or element.alternate is not None:
        return None
    expression = element.expression
    if not isinstance(expression, ops.VariableExpression) or expression.subexpression:
        return None
    part = expression.part
    if part.parameters is not None or part.index is not None:
        return None
    return str(part.name)


def _joined(children: list[Any]) -> list[Any]:
    """Runs of plain text and constants written as one text (one write instead of many)."""
    out: list[Any] = []
    for node in children:
        text = node.text if type(node) in (ops.Text, _ConstantText) else None
        if text is not None and out and type(out[-1]) is _ConstantText:
            out[-1] = _ConstantText(out[-1].text + text)
        elif text is not None:
            out.append(_ConstantText(text))
        else:
            out.append(node)
    return out


def _fold(children: list[Any], constants: Mapping[str, str]) -> int:
    """Replace ``children``'s plain references to ``constants`` by their text; the count."""
    replaced = 0
    for i, node in enumerate(children):
        name = _plain_reference(node)
        if name is not None and name in constants:
            children[i] = _ConstantText(constants[name])
            replaced += 1
    return replaced


def fold_constants(template: airspeed.Template) -> int:
    """Replace the references of once-set constants by their text; the count replaced."""
    top = template.root_element.block.children
    everything = list(vtl_compile.elements(template.root_element))
    if any(isinstance(e, _BINDING) for e in everything):
        return 0
    assigned: dict[str, int] = {}
    for element in everything:
        if isinstance(element, ops.SetDirective):
            name = element.assignment.root_term
            assigned[name] = assigned.get(name, 0) + 1
    constants: dict[str, str] = {}  # the once-set constants whose #set has run
    folded = 0
    for index, child in enumerate(top):
        if constants:  # this top-level element, and every block in it, runs after those #sets
            name = _plain_reference(child)
            if name is not None and name in constants:
                top[index] = _ConstantText(constants[name])
                folded += 1
                continue
            for element in vtl_compile.elements(child):
                if isinstance(element, ops.Block):
                    replaced = _fold(element.children, constants)
                    if replaced:
                        element.children[:] = _joined(element.children)
                        folded += replaced
        found = _constant_set(child)
        if found is not None and assigned.get(found[0]) == 1:
            constants[found[0]] = found[1]
    if folded:
        top[:] = _joined(top)
    return folded


_LOADER = null_loader()


@lru_cache(maxsize=256)
def compiled_template(text: str) -> vtl_compile.CompiledTemplate | None:
    """*text*'s parse tree compiled to closures (:mod:`vtl_compile`), cached; None: not compiled."""
    return vtl_compile.compile_render(compile_template(text), _LOADER, (_ConstantText,))


def request_namespace(body: str, context: Mapping[str, Any],
                      stage_variables: Mapping[str, str] | None = None,
                      params: Mapping[str, Mapping[str, str]] | None = None) -> Any:
    """A render's fresh namespace: ``$input``, ``$util``, ``$context``, ``$stageVariables``."""
    return template_namespace({
        "input": ApiInput(body, params),
        "util": _UTIL,
        "context": context,
        "stageVariables": dict(stage_variables) if stage_variables else {},
    })


def render(
    text: str,
    *,
    body: str,
    context: Mapping[str, Any],
    stage_variables: Mapping[str, str] | None = None,
    params: Mapping[str, Mapping[str, str]] | None = None,
    compiled: bool = True,
) -> str:
    """Render the mapping template *text* for one request (parsed once, cached by its text).

    The compiled render (:mod:`vtl_compile`) gives airspeed's output; when it raises (a template
    failure, or a case it leaves to airspeed), the template is rendered again by airspeed from a
    fresh namespace, which raises airspeed's error. ``compiled=False``: airspeed only.
    """
    template = compile_template(text)
    if compiled:
        plan = compiled_template(text)
        if plan is not None:
            try:
                return plan.render(request_namespace(body, context, stage_variables, params))
            except Exception:
                pass
    namespace = request_namespace(body, context, stage_variables, params)
    try:
        return str(template.merge(namespace, _LOADER))
    except VtlError:
        raise
    except airspeed.TemplateExecutionError as exc:
        cause = exc.__cause__
        if isinstance(cause, VtlError):
            raise type(cause)(str(cause)) from exc
        raise VtlRenderError(f"template execution failed: {exc}") from exc
    except airspeed.TemplateError as exc:
        raise VtlRenderError(str(exc)) from exc
