"""A small interpreter for the GDScript subset that the stub generator and the codec use.

Godot 4 cannot be installed here, so this runs the *generated and hand-written* .gd files
themselves (parsed with gdtoolkit, the parser the lint test uses) over the shared vectors.
It follows Godot 4's rules where the codec depends on them:

- int is signed 64-bit and wraps; ``<<`` and ``>>`` with a negative operand (or a shift count
  outside 0..63) are runtime errors, as in Godot's debug builds;
- typed variables, parameters and returns convert int <-> float and reject other types;
  typed arrays check their elements; calling an unknown method or member is an error;
- PackedByteArray's encode_*/decode_*/slice/resize and String's UTF-8 conversions, including
  ``get_string_from_utf8()`` stopping at the first NUL byte and dropping a leading BOM.

It is not Godot: only the constructs those files use are supported (unsupported syntax raises
GDScriptError), and engine behaviour outside that list is not modelled.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gdtoolkit.parser import parser
from lark import Token, Tree

from .gdscript_builtins import (
    GDArray,
    GDScriptError,
    Native,
    PackedByteArray,
    call_builtin_method,
    check_int,
    global_functions,
)
from .gdscript_ops import assign, binary_chain

sys.setrecursionlimit(20000)

SIMPLE_DEFAULTS = {"int": 0, "float": 0.0, "bool": False, "String": ""}
BUILTIN_TYPES = {"PackedByteArray", "PackedStringArray", "Array", "Dictionary", "Variant"}
_RETURN, _BREAK, _CONTINUE = object(), object(), object()


class EnumNS(dict):
    """A named enum: a Dictionary of its values, readable as attributes."""


class FuncDecl:
    def __init__(self, cls: GDClass, node: Tree, static: bool) -> None:
        header = node.children[0]
        self.cls, self.static, self.body = cls, static, node.children[1:]
        self.name = str(header.children[0])
        self.ret = str(header.children[2]) if len(header.children) > 2 else None
        self.params: list[tuple[str, str | None, Tree | None]] = []
        for arg in header.children[1].children:
            kids = arg.children
            if arg.data == "func_arg_typed":
                self.params.append((str(kids[0]), str(kids[1]), kids[2] if len(kids) > 2 else None))
            elif arg.data in ("func_arg_regular", "func_arg_inf"):
                self.params.append((str(kids[0]), None, kids[1] if len(kids) > 1 else None))
            else:
                raise GDScriptError(f"unsupported parameter {arg.data}")


class VarDecl:
    def __init__(self, node: Tree) -> None:
        kids = node.children
        self.name = str(kids[0])
        self.type: str | None = None
        self.init: Tree | None = None
        if node.data in ("class_var_typed", "class_var_typed_assgnd"):
            self.type = str(kids[1])
            self.init = kids[2] if node.data == "class_var_typed_assgnd" else None
        elif node.data in ("class_var_inf", "class_var_assigned"):
            self.init = kids[1]
        self.getter: list[Tree] | None = None
        self.setter: tuple[str, list[Tree]] | None = None


class GDClass:
    def __init__(self, name: str, outer: GDClass | None, path: Path) -> None:
        self.name, self.outer, self.path = name, outer, path
        self.consts: dict[str, Any] = {}
        self.const_nodes: dict[str, Tree] = {}
        self.vars: dict[str, VarDecl] = {}
        self.funcs: dict[str, FuncDecl] = {}

    def __repr__(self) -> str:
        return f"<GDScript class {self.name}>"


class Instance:
    def __init__(self, cls: GDClass) -> None:
        self.cls, self.vals = cls, {}


class Frame:
    def __init__(self, cls: GDClass, this: Instance | None, prop: str | None = None) -> None:
        self.cls, self.this, self.prop = cls, this, prop
        self.locals: dict[str, Any] = {}
        self.types: dict[str, str | None] = {}
        self.scopes: list[list[str]] = []


class VM:
    def __init__(self) -> None:
        self.scripts: dict[Path, GDClass] = {}
        self.errors: list[str] = []  # push_error() messages
        self.output: list[str] = []  # print() lines
        self.user_args: list[str] = []  # OS.get_cmdline_user_args()
        self.globals = global_functions(self)
        self._literals: dict[int, tuple[Token, Any]] = {}
        self._handlers = {name[3:]: getattr(VM, name) for name in dir(VM) if name.startswith("_e_")}

    # ---- loading -------------------------------------------------------------------------

    def load(self, path: str | Path) -> GDClass:
        path = Path(path).resolve()
        if path not in self.scripts:
            tree = _simplify(parser.parse(path.read_text(encoding="utf-8")))
            cls = GDClass(path.stem, None, path)
            self.scripts[path] = cls
            self._build(cls, tree.children)
        return self.scripts[path]

    def _build(self, cls: GDClass, stmts: list[Any]) -> None:
        last_var: VarDecl | None = None
        for st in stmts:
            kind = st.data
            if kind in ("classname_stmt", "extends_stmt", "annotation", "pass_stmt"):
                continue
            if kind == "const_stmt":
                node = st.children[0]
                cls.const_nodes[str(node.children[0])] = node.children[-1]
            elif kind == "enum_stmt":
                self._enum(cls, st.children[0])
            elif kind == "class_var_stmt":
                last_var = VarDecl(st.children[0])
                cls.vars[last_var.name] = last_var
            elif kind == "property_body_def":
                for part in st.children:
                    if part.data == "property_custom_getter":
                        last_var.getter = part.children[1:]
                    else:
                        last_var.setter = (str(part.children[1]), part.children[2:])
            elif kind in ("func_def", "static_func_def"):
                decl = FuncDecl(
                    cls, st if kind == "func_def" else st.children[0], kind != "func_def"
                )
                cls.funcs[decl.name] = decl
            elif kind == "class_def":
                inner = GDClass(str(st.children[0]), cls, cls.path)
                cls.consts[inner.name] = inner
                self._build(inner, st.children[1:])
            else:
                raise GDScriptError(f"unsupported class statement {kind}")

    def _enum(self, cls: GDClass, node: Tree) -> None:
        if node.data != "enum_named":
            raise GDScriptError("only named enums are supported")
        values, nxt = EnumNS(), 0
        for el in node.children[1].children:
            if el.data != "enum_element":
                continue
            if len(el.children) > 1:
                nxt = self.eval(el.children[1], Frame(cls, None))
            values[str(el.children[0])] = nxt
            nxt += 1
        cls.consts[str(node.children[0])] = values

    # ---- names and types -----------------------------------------------------------------

    def class_const(self, cls: GDClass, name: str, with_funcs: bool = True) -> Any:
        if name not in cls.consts and name in cls.const_nodes:
            cls.consts[name] = self.eval(cls.const_nodes[name], Frame(cls, None))
        if name in cls.consts:
            return cls.consts[name]
        if with_funcs and name in cls.funcs and cls.funcs[name].static:
            return self.bind(cls.funcs[name], None)
        raise KeyError(name)

    def lookup(self, name: str, fr: Frame) -> Any:
        if name in fr.locals:
            return fr.locals[name]
        if name == "self" and fr.this is not None:
            return fr.this
        if fr.this is not None and (name in fr.cls.vars or name in fr.cls.funcs):
            return self.get_attr(fr.this, name, fr)
        cls: GDClass | None = fr.cls
        while cls is not None:  # outer classes lend constants, enums and classes, not functions
            try:
                return self.class_const(cls, name, with_funcs=cls is fr.cls)
            except KeyError:
                cls = cls.outer
        if name in self.globals:
            return self.globals[name]
        raise GDScriptError(f'identifier "{name}" not declared in the current scope')

    def resolve_type(self, hint: str, cls: GDClass) -> Any:
        base = hint.split("[", 1)[0].strip()
        if base in SIMPLE_DEFAULTS or base in BUILTIN_TYPES:
            return base
        parts = [p.strip() for p in base.split(".")]
        value = self.lookup(parts[0], Frame(cls, None))
        for part in parts[1:]:
            value = self.class_const(value, part)
        if not isinstance(value, GDClass):
            raise GDScriptError(f"{hint} is not a type")
        return value

    def default_for(self, hint: str | None, cls: GDClass) -> Any:
        if hint is None:
            return None
        base = self.resolve_type(hint, cls)
        if base in SIMPLE_DEFAULTS:
            return SIMPLE_DEFAULTS[base]
        if base == "PackedByteArray":
            return PackedByteArray()
        if base == "Array":
            return self.coerce(GDArray(), hint, cls)
        return {} if base == "Dictionary" else None

    def coerce(self, value: Any, hint: str | None, cls: GDClass) -> Any:
        """Godot's assignment rules for a typed target (int <-> float convert)."""
        if hint is None or hint in ("void", "Variant"):
            return value
        want = self.resolve_type(hint, cls)
        ok = True
        if want == "int":
            if isinstance(value, float):
                value = check_int(int(value))
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif want == "float":
            value = (
                float(value) if isinstance(value, int) and not isinstance(value, bool) else value
            )
            ok = isinstance(value, float)
        elif want == "bool":
            ok = isinstance(value, bool)
        elif want == "String":
            ok = isinstance(value, str)
        elif want == "PackedByteArray":
            ok = isinstance(value, PackedByteArray)
        elif want == "Dictionary":
            ok = isinstance(value, dict) and not isinstance(value, EnumNS)
        elif want == "PackedStringArray":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif want == "Array":
            ok = isinstance(value, list)
            if ok and "[" in hint:
                elem = hint.split("[", 1)[1].rstrip("]").strip()
                if not isinstance(value, GDArray) or value.elem != elem:
                    value = GDArray([self.coerce(v, elem, cls) for v in value], elem)
                    value.check = lambda v, e=elem: self.coerce(v, e, cls)
        elif isinstance(want, GDClass):
            ok = value is None or (isinstance(value, Instance) and value.cls is want)
        if not ok:
            raise GDScriptError(f"cannot assign {type(value).__name__} {value!r:.60} to {hint}")
        return value

    # ---- objects -------------------------------------------------------------------------

    def new(self, cls: GDClass, args: list[Any]) -> Instance:
        inst = Instance(cls)
        for decl in cls.vars.values():
            fr = Frame(cls, inst, decl.name)
            value = self.eval(decl.init, fr) if decl.init is not None else None
            value = self.default_for(decl.type, cls) if decl.init is None else value
            inst.vals[decl.name] = self.coerce(value, decl.type, cls)
        if "_init" in cls.funcs:
            self.call(cls.funcs["_init"], inst, args)
        elif args:
            raise GDScriptError(f"{cls.name}.new() takes no arguments")
        return inst

    def bind(self, func: FuncDecl, this: Instance | None) -> Callable[..., Any]:
        return lambda *args: self.call(func, this, list(args))

    def get_attr(self, obj: Any, name: str, fr: Frame) -> Any:
        if isinstance(obj, Instance):
            decl = obj.cls.vars.get(name)
            if decl is not None:
                inside = fr.this is obj and fr.prop == name
                if decl.getter is None or inside:
                    return obj.vals[name]
                return self.run_body(decl.getter, Frame(obj.cls, obj, name), decl.type)
            if name in obj.cls.funcs:
                return self.bind(obj.cls.funcs[name], obj)
            try:
                return self.class_const(obj.cls, name)
            except KeyError:
                pass
        elif isinstance(obj, GDClass):
            if name == "new":
                return lambda *args: self.new(obj, list(args))
            if name == "get_script_constant_map":
                return lambda: {
                    k: self.class_const(obj, k) for k in [*obj.const_nodes, *obj.consts]
                }
            try:
                return self.class_const(obj, name)
            except KeyError:
                pass
        elif isinstance(obj, EnumNS) and name in obj:
            return obj[name]
        elif isinstance(obj, Native) and name in obj.members:
            return obj.members[name]
        raise GDScriptError(f'invalid access to property or key "{name}" on {obj!r:.60}')

    def set_attr(self, obj: Any, name: str, value: Any, fr: Frame) -> None:
        if not isinstance(obj, Instance) or name not in obj.cls.vars:
            raise GDScriptError(f'invalid assignment of property "{name}" on {obj!r:.60}')
        decl = obj.cls.vars[name]
        value = self.coerce(value, decl.type, obj.cls)
        if decl.setter is None or (fr.this is obj and fr.prop == name):
            obj.vals[name] = value
            return
        param, body = decl.setter
        sub = Frame(obj.cls, obj, name)
        sub.locals[param] = value
        self.run_body(body, sub, None)

    def call_method(self, obj: Any, name: str, args: list[Any], fr: Frame) -> Any:
        if isinstance(obj, Instance | GDClass | EnumNS):
            return self.get_attr(obj, name, fr)(*args)
        return call_builtin_method(self, obj, name, args)

    def call(self, func: FuncDecl, this: Instance | None, args: list[Any]) -> Any:
        if len(args) > len(func.params):
            raise GDScriptError(f"too many arguments for {func.name}()")
        fr = Frame(func.cls, None if func.static else this)
        for i, (pname, ptype, default) in enumerate(func.params):
            if i < len(args):
                value = args[i]
            elif default is not None:
                value = self.eval(default, fr)
            else:
                raise GDScriptError(f"too few arguments for {func.name}()")
            fr.locals[pname] = self.coerce(value, ptype, func.cls)
            fr.types[pname] = ptype
        return self.run_body(func.body, fr, func.ret)

    def run_body(self, body: list[Tree], fr: Frame, ret: str | None) -> Any:
        signal = self.exec_block(body, fr)
        value = signal[1] if isinstance(signal, tuple) else None
        return self.coerce(value, ret, fr.cls) if ret not in (None, "void") else value

    # ---- statements ----------------------------------------------------------------------

    def exec_block(self, stmts: list[Any], fr: Frame) -> Any:
        """Runs a block; its local variables go out of scope at the end (as in Godot)."""
        fr.scopes.append([])
        try:
            for st in stmts:
                signal = self.exec(st, fr)
                if signal is not None:
                    return signal
            return None
        finally:
            for name in fr.scopes.pop():
                del fr.locals[name]
                fr.types.pop(name, None)

    def exec(self, st: Tree, fr: Frame) -> Any:
        kind = st.data
        if kind == "expr_stmt":
            self.eval(st.children[0], fr)
        elif kind == "func_var_stmt":
            self._declare(st.children[0], fr)
        elif kind == "return_stmt":
            return (_RETURN, self.eval(st.children[0], fr) if st.children else None)
        elif kind == "if_stmt":
            for branch in st.children:
                if branch.data == "else_branch":
                    return self.exec_block(branch.children, fr)
                if self.truthy(self.eval(branch.children[0], fr)):
                    return self.exec_block(branch.children[1:], fr)
        elif kind == "while_stmt":
            while self.truthy(self.eval(st.children[0], fr)):
                signal = self.exec_block(st.children[1:], fr)
                if signal is _BREAK:
                    break
                if isinstance(signal, tuple):
                    return signal
        elif kind == "for_stmt":
            return self._for(st, fr)
        elif kind == "match_stmt":
            value = self.eval(st.children[0], fr)
            for branch in st.children[1:]:
                if self._matches(branch.children[0], value, fr):
                    return self.exec_block(branch.children[1:], fr)
        elif kind == "break_stmt":
            return _BREAK
        elif kind == "continue_stmt":
            return _CONTINUE
        elif kind != "pass_stmt":
            raise GDScriptError(f"unsupported statement {kind}")
        return None

    def _declare(self, node: Tree, fr: Frame) -> None:
        kids, name = node.children, str(node.children[0])
        if name in fr.locals:
            raise GDScriptError(f'variable "{name}" already declared in this scope')
        hint, value = None, None
        if node.data == "func_var_typed_assgnd":
            hint, value = str(kids[1]), self.eval(kids[2], fr)
        elif node.data == "func_var_typed":
            hint = str(kids[1])
            value = self.default_for(hint, fr.cls)
        elif node.data == "func_var_inf":
            value = self.eval(kids[1], fr)
            hint = self._inferred(value)
        elif node.data == "func_var_assigned":
            value = self.eval(kids[1], fr)
        fr.locals[name] = self.coerce(value, hint, fr.cls)
        fr.types[name] = hint
        fr.scopes[-1].append(name)

    def _inferred(self, value: Any) -> str | None:
        for typ, hint in ((bool, "bool"), (int, "int"), (float, "float"), (str, "String")):
            if isinstance(value, typ):
                return hint
        return "PackedByteArray" if isinstance(value, PackedByteArray) else None

    def _for(self, st: Tree, fr: Frame) -> Any:
        name, iterable = str(st.children[0]), self.eval(st.children[1], fr)
        if isinstance(iterable, int):
            items: Any = range(iterable)
        elif isinstance(iterable, dict):
            items = list(iterable.keys())
        elif isinstance(iterable, PackedByteArray):
            items = list(iterable.data)
        else:
            items = list(iterable)
        outer = fr.locals.get(name, _BREAK)
        for item in items:
            fr.locals[name] = item
            signal = self.exec_block(st.children[2:], fr)
            if signal is _BREAK:
                break
            if isinstance(signal, tuple):
                return signal
        if outer is _BREAK:
            fr.locals.pop(name, None)
        return None

    def _matches(self, pattern: Tree, value: Any, fr: Frame) -> bool:
        node = pattern.children[0]
        if isinstance(node, Tree) and node.data == "wildcard_pattern":
            return True
        want = self.eval(node, fr)
        return type(want) is type(value) and want == value

    # ---- expressions ---------------------------------------------------------------------

    def truthy(self, value: Any) -> bool:
        if isinstance(value, PackedByteArray):
            return len(value.data) > 0
        return bool(value)

    def eval(self, node: Any, fr: Frame) -> Any:
        if isinstance(node, Token):
            if node.type == "NAME":
                return self._name(str(node), fr)
            literal = self._literals.get(id(node))
            if literal is None or literal[0] is not node:  # ids of dead tokens are reused
                literal = self._literals[id(node)] = (node, self._token(node))
            return literal[1]
        handler = self._handlers.get(node.data)
        if handler is None:
            if node.data in BINARY_RULES:
                return binary_chain(self, node, fr)
            raise GDScriptError(f"unsupported expression {node.data}")
        return handler(self, node, fr)

    def _name(self, text: str, fr: Frame) -> Any:
        if text in NAME_CONSTANTS:
            return NAME_CONSTANTS[text]
        return self.lookup(text, fr)

    def _token(self, tok: Token) -> Any:
        text = str(tok)
        if tok.type == "NUMBER":
            clean = text.replace("_", "")
            if any(c in clean for c in ".eE") and not clean.lower().startswith(("0x", "-0x")):
                return float(clean)
            return check_int(int(clean))
        if tok.type == "HEX":
            return check_int(int(text.replace("_", ""), 16))
        raise GDScriptError(f"unsupported token {tok.type}")

    def _e_par_expr(self, node: Tree, fr: Frame) -> Any:
        return self.eval(node.children[0], fr)

    def _e_string(self, node: Tree, fr: Frame) -> Any:
        raw = str(node.children[0])[1:-1]
        return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")

    def _e_array(self, node: Tree, fr: Frame) -> Any:
        items = [
            c for c in node.children if not (isinstance(c, Tree) and c.data == "trailing_comma")
        ]
        return GDArray([self.eval(c, fr) for c in items])

    def _e_dict(self, node: Tree, fr: Frame) -> Any:
        out = {}
        for el in node.children:
            if el.data == "c_dict_element":
                out[self.eval(el.children[0], fr)] = self.eval(el.children[1], fr)
        return out

    def _e_test_expr(self, node: Tree, fr: Frame) -> Any:
        then, _, cond, _, other = node.children
        return self.eval(then, fr) if self.truthy(self.eval(cond, fr)) else self.eval(other, fr)

    def _e_asless_actual_not_test(self, node: Tree, fr: Frame) -> Any:
        return not self.truthy(self.eval(node.children[1], fr))

    def _e_getattr(self, node: Tree, fr: Frame) -> Any:
        obj = self.eval(node.children[0], fr)
        for name in node.children[2::2]:
            obj = self.get_attr(obj, str(name), fr)
        return obj

    def _e_getattr_call(self, node: Tree, fr: Frame) -> Any:
        target, args = node.children[0], [self.eval(a, fr) for a in node.children[1:]]
        obj = self.eval(target.children[0], fr)
        names = [str(n) for n in target.children[2::2]]
        for name in names[:-1]:
            obj = self.get_attr(obj, name, fr)
        return self.call_method(obj, names[-1], args, fr)

    def _e_standalone_call(self, node: Tree, fr: Frame) -> Any:
        name = str(node.children[0])
        args = node.children[1:]
        if name in ("preload", "load"):
            rel = self.eval(args[0], fr)
            return self.load(fr.cls.path.parent / rel)
        return self.lookup(name, fr)(*[self.eval(a, fr) for a in args])

    def _e_subscr_expr(self, node: Tree, fr: Frame) -> Any:
        return call_builtin_method(
            self, self.eval(node.children[0], fr), "[]", [self.eval(node.children[1], fr)]
        )

    def _e_assnmnt_expr(self, node: Tree, fr: Frame) -> Any:
        assign(self, node, fr)

    def _e_type_test(self, node: Tree, fr: Frame) -> Any:
        value, op, hint = (
            self.eval(node.children[0], fr),
            str(node.children[1]),
            str(node.children[2]),
        )
        builtin = {
            "bool": bool, "String": str, "PackedByteArray": PackedByteArray, "Array": list,
            "Dictionary": dict, "GDScript": GDClass, "float": float,
        }  # fmt: skip
        if hint == "int":
            found = isinstance(value, int) and not isinstance(value, bool)
        elif hint in builtin:
            found = isinstance(value, builtin[hint])
        else:
            found = isinstance(value, Instance) and value.cls is self.resolve_type(hint, fr.cls)
        return found if op == "is" else not found


NAME_CONSTANTS = {"true": True, "false": False, "null": None, "INF": math.inf, "NAN": math.nan,
                  "PI": math.pi, "TAU": math.tau}  # fmt: skip


def _simplify(node: Any) -> Any:
    """Plain-str rule names, and ``expr`` wrappers replaced by their only child."""
    if isinstance(node, Token):
        return node
    while node.data == "expr" and len(node.children) == 1:
        node = node.children[0]
        if isinstance(node, Token):
            return node
    node.data = str(node.data)
    node.children = [_simplify(c) for c in node.children]
    return node


BINARY_RULES = {
    "comparison", "asless_comparison", "arith_expr", "asless_arith_expr", "mdr_expr",
    "asless_mdr_expr", "bitw_and", "asless_bitw_and", "bitw_or", "asless_bitw_or", "bitw_xor",
    "asless_bitw_xor", "shift_expr", "asless_shift_expr", "and_test", "asless_and_test",
    "or_test", "asless_or_test", "asless_actual_bitw_not", "asless_actual_neg_expr",
    "content_test", "asless_content_test",
}  # fmt: skip
