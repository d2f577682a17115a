"""airspeed's parse tree turned into nested Python closures, once per template.

airspeed (the Velocity engine the twin uses) interprets its parse tree on every merge: each
``$ref`` goes through ~8 Python calls (``_Element.evaluate`` and its exception wrapper,
``evaluate_raw``, ``VariableExpression.calculate``, ``NameOrCall.calculate``,
``LocalNamespace.__getitem__``, ``StoppableStream.write``...), ~1,300 calls for the stream
template. The tree never changes after parsing, so the dispatch can be done once: every node
becomes a closure that does exactly what the node's own ``evaluate_raw``/``calculate`` does
(same lookup order, same ``None`` handling, same operator functions, same ``#set`` scoping), and
writes into a list joined at the end.

Fidelity rules:

* Only node types whose semantics are mirrored here line for line are compiled; any other node
  is run by airspeed itself (its own ``calculate``/``evaluate``) inside the compiled plan.
* A template that uses flow control or definitions (``#stop``, ``#break``/``#return``,
  ``#evaluate``, ``#include``, ``#parse``, macros, ``#define``, user directives) is not
  compiled at all (:func:`plan` returns None): airspeed renders it.
* On any exception the caller renders the same request again with airspeed, so an error is
  airspeed's own error (message, position) and a divergence here can never fail a request that
  airspeed would render. ``tests/templates/test_vtl_compiled.py`` checks plan == airspeed on
  the real templates with hostile frames and on a construct corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airspeed import operators as ops

__all__ = ["Plan", "plan"]

Calc = Callable[[Any, Any], Any]  # (namespace, loader) -> value
Emit = Callable[[list[str], Any, Any], None]  # (out, namespace, loader) -> None
Step = Callable[[Any, Any, Any], Any]  # (current object, loader, top namespace) -> value
Plan = Callable[[Any, Any], str]  # (namespace, loader) -> rendered text

# Node types that make a template interpreted as a whole (flow control, definitions, includes).
_NOT_COMPILED = (ops.StopDirective, ops.EvaluateDirective, ops.IncludeDirective,
                 ops.ParseDirective, ops._FunctionDefinition, ops.MacroCall,
                 ops.UserDefinedDirective)
_CONSTANTS = (ops.NullLiteral, ops.IntegerLiteral, ops.FloatingPointLiteral, ops.BooleanLiteral,
              ops.StringLiteral)


def _children(node: Any) -> list[Any]:
    found: list[Any] = []
    for value in vars(node).values():
        items = value if isinstance(value, list) else [value]
        for item in items:
            owner = getattr(item, "__self__", None)  # e.g. ParenthesizedExpression.calculate
            if isinstance(item, ops._Element):
                found.append(item)
            elif isinstance(owner, ops._Element) and owner is not node:
                found.append(owner)
    return found


def _compilable(root: Any) -> bool:
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, _NOT_COMPILED):
            return False
        stack.extend(_children(node))
    return True


class _Sink:
    """A stream for the nodes airspeed runs itself (``write`` appends to the plan's list)."""

    __slots__ = ("stop", "write")

    def __init__(self, out: list[str]) -> None:
        self.stop = False
        self.write = out.append


# --- values (calculate) ------------------------------------------------------------------------


def _value(node: Any) -> Calc:
    kind = type(node)
    if kind is ops.Value:
        return _value(node.expression)
    if kind in _CONSTANTS:
        constant = node.value
        return lambda ns, loader: constant
    if kind is ops.InterpolatedStringLiteral:
        emit = _block(node.block)

        def interpolated(ns: Any, loader: Any) -> str:
            out: list[str] = []
            emit(out, ns, loader)
            return "".join(out)

        return interpolated
    if kind is ops.FormalReference and type(node.expression) is ops.VariableExpression:
        return _variable(node.expression)  # FormalReference.calculate is expression.calculate
    if kind is ops.Expression:
        return _expression(node)
    fallback: Calc = node.calculate
    return fallback


def _expression(node: Any) -> Calc:
    """Expression.calculate's operator-precedence evaluation, resolved at compile time.

    The order airspeed applies operators depends only on their precedences, so the stacks are
    run once on the plan; ``stack_calculate`` evaluates the right operand before the left one
    and never short-circuits, and so does the plan.
    """
    terms = list(node.expression)
    if not terms:
        return lambda ns, loader: False
    if len(terms) == 1:
        return _value(terms[0])
    opstack: list[Any] = []
    valuestack: list[Calc] = [_value(terms[0])]
    rest = terms[1:]

    def combine() -> None:
        right, left, apply = valuestack.pop(), valuestack.pop(), opstack.pop().apply_to

        def applied(ns: Any, loader: Any) -> Any:
            value2 = right(ns, loader)
            return apply(left(ns, loader), value2)

        valuestack.append(applied)

    while rest:
        if not opstack or rest[0].greater_precedence_than(opstack[-1]):
            opstack.append(rest[0])
            valuestack.append(_value(rest[1]))
            rest = rest[2:]
        else:
            combine()
    while opstack:
        combine()
    if len(valuestack) != 1:
        fallback: Calc = node.calculate
        return fallback
    return valuestack[0]


def _fallback_step(node: Any) -> Step:
    step: Step = node.calculate
    return step


def _name_step(node: Any) -> Step:
    """NameOrCall.calculate, line for line, for a name or a method call (not ``name[index]``)."""
    if node.index is not None:
        return _fallback_step(node)
    name = node.name
    args: list[Calc] | None = None  # None: not a call; []: a call with no arguments
    if node.parameters is not None:
        values = node.parameters.values
        if type(values) is ops.ValueList:
            args = [_value(v) for v in values.values]
        elif isinstance(values, ops._EmptyValues):
            args = []
        else:
            return _fallback_step(node)
    methods_table = ops.__additional_methods__
    local_namespace, function_definition = ops.LocalNamespace, ops._FunctionDefinition

    def step(current: Any, loader: Any, top: Any) -> Any:
        result = None
        try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
            result = current[name]
        except (KeyError, TypeError, AttributeError):
            pass
        if result is None and not isinstance(current, local_namespace):
            try:  # noqa: SIM105
                result = getattr(current, name)
            except AttributeError:
                pass
        if result is None:
            methods = methods_table.get(current.__class__)
            if methods and name in methods:
                method = methods[name]

                def result(*params: Any) -> Any:
                    return method(current, *params)
        if result is None:
            return None
        if isinstance(result, function_definition):
            return node.calculate(current, loader, top)
        if args is not None:
            return result(*[arg(top, loader) for arg in args])
        return result

    return step


def _steps(expression: Any) -> list[Step]:
    """The chain ``a.b().c`` of a VariableExpression as steps (current object -> next)."""
    steps = [_name_step(expression.part)]
    sub = expression.subexpression
    while sub is not None:
        if type(sub.expression) is not ops.VariableExpression:
            steps.append(sub.calculate)  # ``[index]``: airspeed's own SubExpression
            break
        steps.append(_name_step(sub.expression.part))
        sub = sub.expression.subexpression
    return steps


def _variable(expression: Any) -> Calc:
    first, *rest = _steps(expression)
    if not rest:
        return lambda ns, loader: first(ns, loader, ns)

    def chain(ns: Any, loader: Any) -> Any:
        value = first(ns, loader, ns)
        for step in rest:
            value = step(value, loader, ns)
        return value

    return chain


# --- output (evaluate) -------------------------------------------------------------------------


def _reference(node: Any) -> Emit:
    """FormalReference.evaluate_raw."""
    if type(node.expression) is not ops.VariableExpression:
        return _fallback_emit(node)
    steps, alternate = _steps(node.expression), node.alternate
    my_text, replace_text, to_string = node.my_text(), ops.REPLACE_FORMAL_TEXT, ops.value_to_string
    first, calc = steps[0], (_variable(node.expression) if len(steps) > 1 else None)

    def emit(out: list[str], ns: Any, loader: Any) -> None:
        value = first(ns, loader, ns) if calc is None else calc(ns, loader)  # ${name}: one call
        if value == replace_text:
            value = my_text
        elif value is None:
            # airspeed sets silent=True for every reference (AWS parity): absent renders as "".
            value = (alternate.calculate(ns, loader) or "") if alternate is not None else ""
        out.append(value if isinstance(value, str) else to_string(value))

    return emit


def _condition(node: Any) -> Calc:
    """Condition.calculate (None counts as true in airspeed)."""
    inner = node.expression.calculate
    owner = getattr(inner, "__self__", None)
    calc = _expression(owner) if type(owner) is ops.Expression else inner

    def condition(ns: Any, loader: Any) -> bool:
        result = calc(ns, loader)
        return True if result is None else bool(result)

    return condition


def _if(node: Any) -> Emit:
    """IfDirective.evaluate_raw."""
    branches = [(_condition(node.condition), _block(node.block))]
    branches += [(_condition(e.condition), _block(e.block)) for e in node.elseifs]
    else_block = node.else_block
    otherwise = _block(else_block.block) if type(else_block) is ops.ElseBlock else None

    def emit(out: list[str], ns: Any, loader: Any) -> None:
        for condition, block in branches:
            if condition(ns, loader):
                block(out, ns, loader)
                return
        if otherwise is not None:
            otherwise(out, ns, loader)

    return emit


def _set(node: Any) -> Emit:
    """SetDirective -> Assignment.evaluate_raw for ``#set($name = ...)`` (no ``.a``/``[k]``)."""
    assignment = node.assignment
    if assignment.terms:
        return _fallback_emit(node)
    calc, name = _expression(assignment.value), assignment.root_term

    def emit(out: list[str], ns: Any, loader: Any) -> None:
        ns.set_inherited(name, calc(ns, loader))

    return emit


def _fallback_emit(node: Any) -> Emit:
    def emit(out: list[str], ns: Any, loader: Any) -> None:
        node.evaluate(_Sink(out), ns, loader)

    return emit


def _block(block: Any) -> Emit:
    """Block.evaluate_raw: the children in order (adjacent text merged, comments dropped)."""
    emits: list[Emit] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            text = "".join(texts)
            texts.clear()
            emits.append(lambda out, ns, loader: out.append(text))

    for child in block.children:
        kind = type(child)
        if kind is ops.Text:
            texts.append(child.text)
            continue
        if kind is ops.Comment:
            continue
        flush()
        if kind is ops.FormalReference:
            emits.append(_reference(child))
        elif kind is ops.SetDirective:
            emits.append(_set(child))
        elif kind is ops.IfDirective:
            emits.append(_if(child))
        else:
            emits.append(_fallback_emit(child))
    flush()
    if len(emits) == 1:
        return emits[0]

    def emit(out: list[str], ns: Any, loader: Any) -> None:
        for one in emits:
            one(out, ns, loader)

    return emit


def plan(template: Any) -> Plan | None:
    """The compiled render of a parsed airspeed Template, or None if it must be interpreted."""
    root = template.root_element
    if type(root) is not ops.TemplateBody or not _compilable(root):
        return None
    body = _block(root.block)
    local_namespace = ops.LocalNamespace

    def render(namespace: Any, loader: Any) -> str:
        if not isinstance(namespace, local_namespace):  # TemplateBody.evaluate_raw
            namespace = local_namespace(namespace)
        out: list[str] = []
        body(out, namespace, loader)
        return "".join(out)

    return render
