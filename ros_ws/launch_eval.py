"""``$(eval ...)`` for YAML launch files: the expressions launch files use, and nothing that can hang.

ROS 2 launch evaluates ``$(eval)`` with Python's ``eval`` (``math`` in scope). Launch
files use it for comparisons and small arithmetic — ``'$(var robot)' == 'mujoco'``,
``$(var n) - 1``, ``not $(var sim)`` — but plain ``eval`` also runs ``9**9**9`` (hours of
CPU) or ``[0]*10**9`` (gigabytes). This interpreter walks the expression's AST itself and
accepts only literals, arithmetic, comparisons, boolean logic, conditional expressions,
``math`` constants and functions, ``str``/``int``/``float``/``bool``/``len``/``min``/``max``/
``abs``/``round`` and string methods that cannot grow their input; every intermediate number and string is bounded, so any accepted
expression finishes in microseconds.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any
from collections.abc import Callable

MAX_MAGNITUDE = 1e15
"""Largest |number| an intermediate result may have."""
MAX_EXPONENT = 64
MAX_LENGTH = 10_000
"""Longest string or sequence an intermediate result may have."""

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_, ast.IsNot: operator.is_not,
}
_SAFE_MATH = {name for name in dir(math) if not name.startswith("_")} - {"factorial", "comb", "perm", "prod", "lcm",
                                                                        "gcd", "isqrt"}
_STR_METHODS = {"startswith", "endswith", "lower", "upper", "strip", "lstrip", "rstrip", "split", "isdigit",
                "isalpha", "isalnum", "count", "find", "title", "capitalize"}
"""String methods whose result is no longer than their input (no replace/zfill/center)."""
_BUILTINS: dict[str, Callable[..., Any]] = {"str": str, "int": int, "float": float, "bool": bool, "len": len,
                                            "min": min, "max": max, "abs": abs, "round": round}


class EvalError(ValueError):
    """The expression is not allowed, or failed; the message says why."""


def _check(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, int) and value.bit_length() > 64 or abs(value) > MAX_MAGNITUDE:
            raise EvalError(f"intermediate result beyond ±{MAX_MAGNITUDE:g}")
        return value
    if isinstance(value, (str, tuple, list)):
        if len(value) > MAX_LENGTH:
            raise EvalError(f"intermediate result longer than {MAX_LENGTH:,}")
        return value
    raise EvalError(f"values of type {type(value).__name__} are not allowed")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Evaluator:
    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise EvalError(f"{type(node).__name__} is not allowed in $(eval)")
        return _check(method(node))

    def _Expression(self, node: ast.Expression) -> Any:
        return self.eval(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise EvalError(f"name {node.id!r} is not defined (use $(var {node.id}) for launch arguments)")

    def _Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in _SAFE_MATH:
            value = getattr(math, node.attr)
            if not isinstance(value, (int, float)):
                raise EvalError(f"math.{node.attr} is a function: call it")
            return value
        raise EvalError("only math constants and functions may be looked up")

    def _Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.eval(e) for e in node.elts)

    def _List(self, node: ast.List) -> Any:
        return [self.eval(e) for e in node.elts]

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not _number(value):
            raise EvalError("unary + and - need a number")
        return -value if isinstance(node.op, ast.USub) else +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise EvalError(f"operator {type(node.op).__name__} is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Pow):
            if not (_number(left) and _number(right)) or abs(right) > MAX_EXPONENT:
                raise EvalError(f"** needs numbers and an exponent within ±{MAX_EXPONENT}")
            if abs(left) > 1 and abs(right) * math.log10(abs(left)) > math.log10(MAX_MAGNITUDE):
                raise EvalError(f"result beyond ±{MAX_MAGNITUDE:g}")
        if isinstance(node.op, ast.Mult) and not (_number(left) and _number(right)):
            seq, count = (left, right) if _number(right) else (right, left)
            if not (isinstance(count, int) and isinstance(seq, (str, list, tuple))) \
                    or len(seq) * max(count, 0) > MAX_LENGTH:
                raise EvalError(f"repetition longer than {MAX_LENGTH:,}")
        try:
            return op(left, right)
        except (ArithmeticError, TypeError) as exc:
            raise EvalError(f"{type(exc).__name__}: {exc}") from None

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for expr in node.values:
            value = self.eval(expr)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.eval(comparator)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError as exc:
                raise EvalError(f"TypeError: {exc}") from None
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        if node.keywords:
            raise EvalError("keyword arguments are not allowed")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "math" \
                and func.attr in _SAFE_MATH and callable(getattr(math, func.attr)):
            target: Callable[..., Any] = getattr(math, func.attr)
            name = f"math.{func.attr}"
        elif isinstance(func, ast.Name) and func.id in _BUILTINS:
            target, name = _BUILTINS[func.id], func.id
        elif isinstance(func, ast.Attribute) and func.attr in _STR_METHODS:
            owner = self.eval(func.value)
            if not isinstance(owner, str):
                raise EvalError(f".{func.attr}() is allowed on strings only")
            target, name = getattr(owner, func.attr), f"str.{func.attr}"
        else:
            raise EvalError("only math functions, str/int/float/bool/len/min/max/abs/round and simple string "
                            "methods (startswith, endswith, lower, strip, split, ...) may be called")
        args = [self.eval(a) for a in node.args]
        if name == "int" and args and isinstance(args[0], str) and len(args[0]) > 20:
            raise EvalError("int() of a string longer than 20 characters")
        try:
            return target(*args)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise EvalError(f"{name}: {type(exc).__name__}: {exc}") from None


def safe_eval(expression: str) -> Any:
    """Evaluate a ``$(eval)`` expression; raises :class:`EvalError` saying what is not allowed."""
    if len(expression) > MAX_LENGTH:
        raise EvalError(f"expression longer than {MAX_LENGTH:,} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise EvalError(f"invalid Python expression ({exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise EvalError("expression nested too deeply") from None
    try:
        return _Evaluator().eval(tree)
    except RecursionError:
        raise EvalError("expression nested too deeply") from None
