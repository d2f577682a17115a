"""A parsed airspeed template compiled to Python closures: airspeed's output, without its interpreter.

airspeed renders by walking its parse tree: every ``$a.b.c`` goes through ``FormalReference``,
``VariableExpression``, ``NameOrCall`` and ``SubExpression`` objects, each lookup tries
``obj[name]`` inside a ``try``, every ``"...$x..."`` literal opens a ``StoppableStream``, and each
node's ``evaluate`` wraps errors. :func:`compile_render` turns the tree (after
``vtl.fold_constants``) into closures that do the same lookups in the same order, once per node
kind decided at compile time instead of per render:

* text (``Text``, ``FallthroughHashText``, ``vtl._ConstantText``), comments;
* ``$x``/``${x}``/``$!{x}``/``${x|alt}`` as ``FormalReference.evaluate_raw`` writes them
  (``REPLACE_FORMAL_TEXT``, the alternate value, silent references, ``value_to_string``);
* reference chains as ``NameOrCall.calculate``: the item, then ``getattr`` unless the object is
  a ``LocalNamespace``, then ``airspeed.operators.__additional_methods__`` by exact class; then the
  call or the index; ``SubExpression`` steps (``.name``, ``[index]``);
* literals, ``"..."`` literals as a join of their compiled parts, ``!``/``not``, parentheses;
* expressions with binary operators, evaluated in the exact order of ``Expression.calculate``
  (its operator-precedence stacks are run at compile time: they depend only on the operators);
* ``#set($name = ...)`` (``Assignment`` without terms: ``set_inherited``, None included),
  ``#if``/``#elseif``/``#else`` (``Condition``: None is true).

Any other node (``#foreach``... are refused below; array, map and range literals, a reference
with no expression...) is evaluated by airspeed itself (``element.evaluate``/``calculate``), in
the same namespace (airspeed's own ``LocalNamespace``), so what it sees is the same.

Failures: when a compiled render raises anything, the caller renders again with airspeed from a
fresh namespace and gets airspeed's exception and message. That re-render is only sound if the
failed attempt changed nothing the second one sees: templates that can modify objects they do not
own (``#set($a.b = ...)``, a call not in :data:`PURE_CALLS` such as ``put``/``add``), or that
re-enter names or streams (``#foreach``, macros, ``#define``, ``#evaluate``, ``#parse``,
``#include``, ``#stop``, ``#return``), are not compiled at all (:func:`compile_render` returns
None and the caller uses airspeed for the whole render).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import airspeed.operators as ops

__all__ = ["PURE_CALLS", "CompiledTemplate", "Fallback", "compile_render", "elements", "refusal"]

Value = Callable[[Any], Any]  # ns -> value
Writer = Callable[[list[str], Any], None]  # (out, ns) -> None
Step = Callable[[Any, Any], Any]  # (current object, ns) -> value


class Fallback(Exception):
    """A compiled render met a case it leaves to airspeed: render the whole template with airspeed."""


# Methods a template may call without the re-render after a failure seeing a changed object: the
# $input and $util functions, the Java String/Map/List readers of airspeed's table and vtl.py's.
PURE_CALLS = frozenset({
    "json", "path", "params",
    "escapeJavaScript", "base64Encode", "base64Decode", "urlEncode", "urlDecode", "parseJson",
    "length", "replaceAll", "replaceFirst", "replace", "startsWith", "endsWith", "contains",
    "indexOf", "lastIndexOf", "substring", "matches", "toLowerCase", "toUpperCase", "isEmpty",
    "split", "trim", "equals", "equalsIgnoreCase", "charAt", "toString", "concat",
    "size", "get", "containsKey", "keySet",
})

# Directives that bind or re-enter names, streams or templates: never compiled.
_REFUSED = (ops.ForeachDirective, ops.MacroDefinition, ops.DefineDefinition, ops.MacroCall,
            ops.EvaluateDirective, ops.IncludeDirective, ops.ParseDirective,
            ops.UserDefinedDirective, ops.StopDirective, ops.ReturnDirective)

_METHODS: dict[type, dict[str, Callable[..., Any]]] = ops.__additional_methods__
_LocalNamespace = ops.LocalNamespace
_REPLACE = ops.REPLACE_FORMAL_TEXT
_to_string = ops.value_to_string
_MISSING = object()

# How ``obj[name]`` (a str name) behaves for an exact class: _PLAIN_DICT = dict's own __getitem__
# with no __missing__ (a KeyError is a miss: dict.get is the same), _NOT_SUBSCRIPTABLE = always a
# TypeError (no __getitem__ at all, or str/list/tuple indexed by a str), _GENERIC = try it.
_PLAIN_DICT, _NOT_SUBSCRIPTABLE, _GENERIC = 0, 1, 2
_KINDS: dict[type, int] = {str: _NOT_SUBSCRIPTABLE, list: _NOT_SUBSCRIPTABLE,
                           tuple: _NOT_SUBSCRIPTABLE, type(None): _NOT_SUBSCRIPTABLE}


def _kind(cls: type) -> int:
    if issubclass(cls, type):
        kind = _GENERIC  # a class: __class_getitem__
    elif (issubclass(cls, dict) and cls.__getitem__ is dict.__getitem__
          and getattr(cls, "__missing__", None) is None):
        kind = _PLAIN_DICT
    elif getattr(cls, "__getitem__", None) is None:
        kind = _NOT_SUBSCRIPTABLE
    else:
        kind = _GENERIC
    if len(_KINDS) < 256:
        _KINDS[cls] = kind
    return kind


def _item_or_attr(obj: Any, name: str) -> Any:
    """The first two lookups of ``NameOrCall.calculate``: ``obj[name]``, then ``getattr``."""
    cls = obj.__class__
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _kind(cls)
    if kind == _PLAIN_DICT:
        result = dict.get(obj, name)
    elif kind == _NOT_SUBSCRIPTABLE:
        result = None
    else:
        try:
            result = obj[name]
        except (KeyError, TypeError, AttributeError):
            result = None
    if result is None and not isinstance(obj, _LocalNamespace):
        result = getattr(obj, name, None)
    return result


def _namespace_item(ns: Any, name: str) -> Any:
    """``ns[name]`` of the render's root ``LocalNamespace`` (its own dict, then its parent)."""
    result = dict.get(ns, name, _MISSING)
    if result is _MISSING:
        try:
            result = ns.parent[name]
        except (KeyError, TypeError, AttributeError):
            result = None
    return result


class _ListStream:
    """The stream a fallback element writes to: the compiled render's output list."""

    __slots__ = ("write",)

    def __init__(self, out: list[str]) -> None:
        self.write = out.append


@dataclass
class CompiledTemplate:
    """A template's compiled render and what in it is left to airspeed."""

    writers: list[Writer]
    top_fallbacks: list[str] = field(default_factory=list)  # top-level elements airspeed evaluates
    nested_fallbacks: list[str] = field(default_factory=list)  # nodes below them airspeed evaluates

    def render(self, ns: Any) -> str:
        """The output for the root namespace *ns* (``template_namespace``); Fallback if it is not."""
        if type(ns) is not _LocalNamespace or isinstance(ns.parent, _LocalNamespace):
            raise Fallback("not a root LocalNamespace")
        out: list[str] = []
        for writer in self.writers:
            writer(out, ns)
        return "".join(out)


def elements(node: Any) -> Iterator[Any]:
    """``node`` and every airspeed element below it."""
    stack = [node]
    while stack:
        element = stack.pop()
        yield element
        for value in vars(element).values():
            if isinstance(value, ops._Element):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, ops._Element))


def refusal(template: Any) -> str | None:
    """Why *template* is not compiled (None: it is)."""
    for element in elements(template.root_element):
        if isinstance(element, _REFUSED):
            return type(element).__name__
        if isinstance(element, ops.Assignment) and element.terms:
            return "#set of a property or index"
        if isinstance(element, ops.NameOrCall) and element.parameters is not None \
                and element.name not in PURE_CALLS:
            return f"call of {element.name}()"
    return None


def compile_render(template: Any, loader: Any,
                   text_types: tuple[type, ...] = ()) -> CompiledTemplate | None:
    """The compiled render of the parsed airspeed *template* (None: not compiled, see refusal).

    *text_types*: classes of nodes (not airspeed's) with a constant ``text`` they write, such as
    ``vtl._ConstantText``.
    """
    if refusal(template) is not None:
        return None
    compiler = _Compiler(loader, text_types)
    writers = compiler.block(template.root_element.block.children, top=True)
    return CompiledTemplate(writers, compiler.top_fallbacks, compiler.nested_fallbacks)


class _Compiler:
    def __init__(self, loader: Any, text_types: tuple[type, ...]) -> None:
        self.loader = loader
        self.text_types = (ops.Text, ops.FallthroughHashText, *text_types)
        self.top_fallbacks: list[str] = []
        self.nested_fallbacks: list[str] = []

    # --- output ---------------------------------------------------------------------------------

    def block(self, children: list[Any], *, top: bool = False) -> list[Writer]:
        writers: list[Writer] = []
        pending: list[str] = []  # adjacent constant texts, written as one

        def flush() -> None:
            if pending:
                text = "".join(pending)
                pending.clear()
                writers.append(lambda out, ns: out.append(text))

        for child in children:
            if isinstance(child, ops.Comment):
                continue
            text = self.constant_text(child)
            if text is not None:
                pending.append(text)
                continue
            flush()
            writer = self.writer(child)
            if writer is None:
                (self.top_fallbacks if top else self.nested_fallbacks).append(type(child).__name__)
                writer = self.fallback_writer(child)
            writers.append(writer)
        flush()
        return writers

    def constant_text(self, node: Any) -> str | None:
        if type(node) in self.text_types:
            return str(node.text)
        return None

    def fallback_writer(self, node: Any) -> Writer:
        loader = self.loader

        def write(out: list[str], ns: Any) -> None:
            node.evaluate(_ListStream(out), ns, loader)

        return write

    def writer(self, node: Any) -> Writer | None:
        kind = type(node)
        if kind is ops.FormalReference:
            return self.reference(node)
        if kind is ops.SetDirective:
            return self.set_directive(node)
        if kind is ops.IfDirective:
            return self.if_directive(node)
        return None

    def reference(self, node: Any) -> Writer | None:
        if node.expression is None:
            return None
        value = self.variable(node.expression, on_namespace=True)
        alternate = None if node.alternate is None else self.value(node.alternate.expression)
        silent = bool(node.silent)
        text = node.my_text()

        def write(out: list[str], ns: Any) -> None:
            result = value(ns)
            if result == _REPLACE:
                result = text
            elif result is None:
                if alternate is not None:
                    result = alternate(ns) or ""
                elif silent:
                    result = ""
                else:
                    result = text
            out.append(result if isinstance(result, str) else _to_string(result))

        return write

    def set_directive(self, node: Any) -> Writer | None:
        assignment = node.assignment
        if assignment.terms:
            return None
        name = assignment.root_term
        value = self.expression(assignment.value)

        def write(out: list[str], ns: Any) -> None:
            # set_inherited in a root namespace (CompiledTemplate.render checks): its own dict
            dict.__setitem__(ns, name, value(ns))

        return write

    def if_directive(self, node: Any) -> Writer:
        branches: list[tuple[Value, list[Writer]]] = [
            (self.condition(node.condition), self.block(node.block.children))]
        for elseif in node.elseifs:
            branches.append((self.condition(elseif.condition), self.block(elseif.block.children)))
        else_block = node.else_block
        otherwise = self.block(else_block.block.children) \
            if isinstance(else_block, ops.ElseBlock) else []

        def write(out: list[str], ns: Any) -> None:
            for condition, writers in branches:
                if condition(ns):
                    for writer in writers:
                        writer(out, ns)
                    return
            for writer in otherwise:
                writer(out, ns)

        return write

    # --- values -----------------------------------------------------------------------------------

    def condition(self, node: Any) -> Value:
        parenthesized = node.expression  # ParenthesizedExpression: calculate = Expression.calculate
        expression = getattr(parenthesized.calculate, "__self__", None)
        if not isinstance(expression, ops.Expression):
            self.nested_fallbacks.append("Condition")
            calculate, loader = node.calculate, self.loader
            return lambda ns: calculate(ns, loader)
        value = self.expression(expression)

        def condition(ns: Any) -> bool:
            result = value(ns)
            return True if result is None else bool(result)

        return condition

    def expression(self, node: Any) -> Value:
        """``Expression.calculate``: its operator stacks run now, the operations in their order."""
        terms = list(node.expression)
        if not terms:
            return lambda ns: False
        # A stack entry is ("value", Value) (a Value node, evaluated when its operation runs) or
        # ("result", index) (the result of an earlier operation).
        leaves: list[Value] = []
        operations: list[tuple[Callable[[Any, Any], Any], tuple[str, int], tuple[str, int]]] = []

        def leaf(value_node: Any) -> tuple[str, int]:
            leaves.append(self.value(value_node.expression))
            return ("value", len(leaves) - 1)

        opstack: list[Any] = []
        valuestack = [leaf(terms[0])]
        rest = terms[1:]

        def reduce() -> None:
            right = valuestack.pop()
            left = valuestack.pop()
            operations.append((opstack.pop().apply_to, left, right))
            valuestack.append(("result", len(operations) - 1))

        while rest:
            if not opstack or rest[0].greater_precedence_than(opstack[-1]):
                opstack.append(rest[0])
                valuestack.append(leaf(rest[1]))
                rest = rest[2:]
            else:
                reduce()
        while opstack:
            reduce()
        if len(valuestack) != 1:  # airspeed logs and uses the first: leave it to airspeed
            self.nested_fallbacks.append("Expression")
            calculate, loader = node.calculate, self.loader
            return lambda ns: calculate(ns, loader)
        if not operations:
            return leaves[0]
        if len(operations) == 1 and left_right_values(operations[0]):
            apply, (_, left_index), (_, right_index) = operations[0]
            left_value, right_value = leaves[left_index], leaves[right_index]

            def binary(ns: Any) -> Any:
                right = right_value(ns)  # airspeed evaluates the right operand first
                return apply(left_value(ns), right)

            return binary
        program = tuple(operations)

        def run(ns: Any) -> Any:
            results: list[Any] = []
            for apply, left, right in program:
                value2 = leaves[right[1]](ns) if right[0] == "value" else results[right[1]]
                value1 = leaves[left[1]](ns) if left[0] == "value" else results[left[1]]
                results.append(apply(value1, value2))
            return results[-1]

        return run

    def value(self, node: Any) -> Value:
        """A ``Value``'s expression node as a closure."""
        kind = type(node)
        if kind in (ops.NullLiteral, ops.IntegerLiteral, ops.FloatingPointLiteral,
                    ops.BooleanLiteral, ops.StringLiteral):
            constant = node.value
            return lambda ns: constant
        if kind is ops.InterpolatedStringLiteral:
            return self.interpolated(node)
        if kind is ops.FormalReference and node.expression is not None:
            return self.variable(node.expression, on_namespace=True)  # calculate ignores |alt
        if kind is ops.ParenthesizedExpression:
            expression = getattr(node.calculate, "__self__", None)
            if isinstance(expression, ops.Expression):
                return self.expression(expression)
        if kind is ops.UnaryOperatorValue:
            operand, op = self.value(node.value.expression), node.op

            def unary(ns: Any) -> Any:
                result = operand(ns)
                return False if result is None else op(result)

            return unary
        self.nested_fallbacks.append(kind.__name__)
        calculate, loader = node.calculate, self.loader
        return lambda ns: calculate(ns, loader)

    def interpolated(self, node: Any) -> Value:
        writers = self.block(node.block.children)
        if all(self.constant_text(c) is not None or isinstance(c, ops.Comment)
               for c in node.block.children):
            text = "".join(self.constant_text(c) or "" for c in node.block.children)
            return lambda ns: text
        if len(writers) == 1:
            (only,) = writers

            def one(ns: Any) -> str:
                out: list[str] = []
                only(out, ns)
                return "".join(out)

            return one

        def join(ns: Any) -> str:
            out: list[str] = []
            for writer in writers:
                writer(out, ns)
            return "".join(out)

        return join

    def variable(self, node: Any, *, on_namespace: bool) -> Value:
        """``VariableExpression.calculate`` (global namespace = the namespace) as a closure."""
        steps = [self.name_step(node.part, on_namespace=on_namespace)]
        steps.extend(self.sub_steps(node.subexpression))
        first, *rest = steps
        if not rest:
            return lambda ns: first(ns, ns)
        if len(rest) == 1:
            (second,) = rest
            return lambda ns: second(first(ns, ns), ns)

        def chain(ns: Any) -> Any:
            result = first(ns, ns)
            for step in rest:
                result = step(result, ns)
            return result

        return chain

    def sub_steps(self, node: Any) -> list[Step]:
        steps: list[Step] = []
        while node is not None:
            expression = node.expression
            if isinstance(expression, ops.VariableExpression):  # .name...
                steps.append(self.name_step(expression.part, on_namespace=False))
                node = expression.subexpression
            else:  # [index]: evaluated with the current object as its namespace, no try
                steps.append(self.subscript_step(expression))
                node = node.subexpression
        return steps

    def subscript_step(self, array_index: Any) -> Step:
        index_node = array_index.index
        if type(index_node) in (ops.IntegerLiteral, ops.StringLiteral):
            constant = index_node.value
            return lambda obj, ns: obj[constant]
        self.nested_fallbacks.append("ArrayIndex")
        calculate, loader = array_index.calculate, self.loader
        return lambda obj, ns: obj[calculate(obj, loader)]

    def name_step(self, node: Any, *, on_namespace: bool) -> Step:
        """``NameOrCall.calculate(obj, loader, ns)``; *on_namespace*: obj is the root namespace."""
        name: str = node.name
        find = _namespace_item if on_namespace else _item_or_attr
        function_definition = ops._FunctionDefinition

        if node.parameters is not None:
            parameters = [self.value(v.expression) for v in _parameter_values(node.parameters)]
            if not parameters:
                def call0(obj: Any, ns: Any) -> Any:
                    result = find(obj, name)
                    if result is None:
                        methods = _METHODS.get(obj.__class__)
                        if methods and name in methods:
                            return methods[name](obj)
                        return None
                    if isinstance(result, function_definition):
                        raise Fallback("macro")
                    return result()

                return call0
            if len(parameters) == 1:
                (parameter,) = parameters

                def call1(obj: Any, ns: Any) -> Any:
                    result = find(obj, name)
                    if result is None:
                        methods = _METHODS.get(obj.__class__)
                        if methods and name in methods:
                            argument = parameter(ns)
                            return methods[name](obj, argument)
                        return None
                    if isinstance(result, function_definition):
                        raise Fallback("macro")
                    return result(parameter(ns))

                return call1

            def call(obj: Any, ns: Any) -> Any:
                result = find(obj, name)
                if result is None:
                    methods = _METHODS.get(obj.__class__)
                    if methods and name in methods:
                        arguments = [p(ns) for p in parameters]
                        return methods[name](obj, *arguments)
                    return None
                if isinstance(result, function_definition):
                    raise Fallback("macro")
                return result(*[p(ns) for p in parameters])

            return call

        def plain(obj: Any, ns: Any) -> Any:
            result = find(obj, name)
            if result is None:
                methods = _METHODS.get(obj.__class__)
                if methods and name in methods:
                    raise Fallback("a method without a call")  # airspeed's own closure
                return None
            if isinstance(result, function_definition):
                raise Fallback("macro")
            return result

        if node.index is None:
            return plain
        index = self.value(node.index.index)

        def indexed(obj: Any, ns: Any) -> Any:
            result = plain(obj, ns)
            if result is None:
                return None
            array_index = index(ns)
            if isinstance(result, list) and not isinstance(array_index, int):
                raise ValueError(f"expected integer for array index, got '{array_index}'")
            try:
                return result[array_index]
            except Exception:
                return None

        return indexed


def left_right_values(operation: tuple[Any, tuple[str, int], tuple[str, int]]) -> bool:
    return operation[1][0] == "value" and operation[2][0] == "value"


def _parameter_values(parameter_list: Any) -> list[Any]:
    values = parameter_list.values
    return list(values.values) if isinstance(values, ops.ValueList) else []
