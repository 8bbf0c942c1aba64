"""Operators and assignment for gdscript_vm.py, with Godot 4's int rules (debug build)."""

from __future__ import annotations

import math
from typing import Any

from lark import Token, Tree

from .gdscript_builtins import GDArray, GDScriptError, PackedByteArray, wrap


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)


def _ints(op: str, a: Any, b: Any) -> None:
    if not (_is_int(a) and _is_int(b)):
        raise GDScriptError(f"invalid operands {type(a).__name__} and {type(b).__name__} for {op}")


def binop(op: str, a: Any, b: Any) -> Any:
    if op in ("and", "&&"):
        return bool(a) and bool(b)
    if op in ("==", "!="):
        return _equal(a, b) == (op == "==")
    if op in ("<", ">", "<=", ">="):
        if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
            raise GDScriptError(f"invalid operands for {op}: {a!r:.40} {b!r:.40}")
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    if op in ("<<", ">>"):
        _ints(op, a, b)
        if a < 0 or b < 0:
            raise GDScriptError(
                "Invalid operands for bit shifting. Only positive operands are supported."
            )
        if b > 63:
            raise GDScriptError("Invalid operands for bit shifting. The shift count is > 63.")
        return wrap(a << b) if op == "<<" else a >> b
    if op in ("&", "|", "^"):
        _ints(op, a, b)
        return wrap({"&": a & b, "|": a | b, "^": a ^ b}[op])
    if _is_int(a) and _is_int(b):
        return _int_arith(op, a, b)
    if _is_num(a) and _is_num(b):
        a, b = float(a), float(b)
        if op == "/" and b == 0.0:
            return (
                math.nan
                if a == 0.0 or math.isnan(a)
                else math.copysign(math.inf, a) * math.copysign(1, b)
            )  # noqa: E501
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / (b or 1), "%": math.fmod(a, b)}[op]
    if op == "+" and type(a) is type(b) and isinstance(a, str):
        return a + b
    if op == "+" and isinstance(a, PackedByteArray) and isinstance(b, PackedByteArray):
        return PackedByteArray(a.data + b.data)
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return GDArray(list(a) + list(b))
    raise GDScriptError(f"invalid operands {type(a).__name__} and {type(b).__name__} for {op}")


def _int_arith(op: str, a: int, b: int) -> int:
    if op in ("/", "%"):
        if b == 0:
            raise GDScriptError("Division by zero error in operator" + op)
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return wrap(q) if op == "/" else wrap(a - q * b)
    return wrap({"+": a + b, "-": a - b, "*": a * b}[op])


def _equal(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return a == b
    if a is None or b is None:
        return a is b
    if type(a) is not type(b) and not (isinstance(a, list) and isinstance(b, list)):
        raise GDScriptError(f"invalid operands {type(a).__name__} and {type(b).__name__} for ==")
    if isinstance(a, str | bool | PackedByteArray | list | dict):
        return a == b
    return a is b


def binary_chain(vm: Any, node: Tree, fr: Any) -> Any:
    kids = node.children
    if len(kids) == 2:  # unary: "-x", "~x"
        value = vm.eval(kids[1], fr)
        if str(kids[0]) == "~":
            _ints("~", value, 0)
            return ~value
        if _is_int(value):
            return wrap(-value)
        if isinstance(value, float):
            return -value
        raise GDScriptError(f"invalid operand for unary minus: {value!r:.40}")
    result = vm.eval(kids[0], fr)
    i = 1
    while i < len(kids):
        op = kids[i].data if isinstance(kids[i], Tree) else str(kids[i])
        if op in ("or", "||") and vm.truthy(result):
            return True
        if op in ("and", "&&") and not vm.truthy(result):
            return False
        right = vm.eval(kids[i + 1], fr)
        if op in ("or", "||", "and", "&&"):
            result = vm.truthy(right)
        elif op in ("in", "not_in_op"):
            found = (
                right.data.count(result) > 0
                if isinstance(right, PackedByteArray)
                else result in right
            )
            result = found == (op == "in")
        else:
            result = binop(op, result, right)
        i += 2
    return result


def assign(vm: Any, node: Tree, fr: Any) -> None:
    target, op, value_node = node.children
    value = vm.eval(value_node, fr)
    op = str(op)
    if op != "=":
        value = binop(op[:-1], vm.eval(target, fr), value)
    if isinstance(target, Token):
        name = str(target)
        if name in fr.locals:
            fr.locals[name] = vm.coerce(value, fr.types.get(name), fr.cls)
        elif fr.this is not None and name in fr.this.cls.vars:
            vm.set_attr(fr.this, name, value, fr)
        else:
            raise GDScriptError(f'identifier "{name}" not declared in the current scope')
    elif target.data == "getattr":
        obj = vm.eval(target.children[0], fr)
        names = [str(n) for n in target.children[2::2]]
        for name in names[:-1]:
            obj = vm.get_attr(obj, name, fr)
        vm.set_attr(obj, names[-1], value, fr)
    elif target.data == "subscr_expr":
        container, key = vm.eval(target.children[0], fr), vm.eval(target.children[1], fr)
        if isinstance(container, PackedByteArray):
            container.data[key] = value & 0xFF
        elif isinstance(container, dict):
            container[key] = value
        elif isinstance(container, list):
            check = getattr(container, "check", None)
            container[key] = check(value) if check else value
        else:
            raise GDScriptError(f"cannot index-assign into {type(container).__name__}")
    else:
        raise GDScriptError(f"unsupported assignment target {target.data}")
