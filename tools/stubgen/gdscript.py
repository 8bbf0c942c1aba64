"""GDScript emitter: one Godot 4 script per proto package, messages as typed inner classes.

Naming: a message ``Image`` becomes the inner class ``ImageMsg``. Godot refuses any class
(inner ones too) whose name is a native class ("Class "Image" hides a native class"), and new
native classes appear with engine releases, so every message gets the suffix rather than a
list of today's names. Enums keep their names (their values are plain ints: unknown values
survive). Fields keep their proto names unless they collide with a GDScript keyword, an
Object/RefCounted member or a generated member; those get a ``_pb`` suffix.

The script gets ``class_name`` from ``csharp_namespace`` without dots (``PixelKilnV1``); the
codec is preloaded by relative path, so nothing else becomes global.
"""

from __future__ import annotations

from .model import Enum, Field, Message, ModelError, ProtoFile
from .text import CodeWriter, comment_lines, pascal_case, words
from .wire import LEN, tag

KEYWORDS = words(
    "if elif else for while match when break continue pass return class class_name extends is "
    "in as self signal func static const enum var breakpoint preload await yield super trait "
    "namespace and or not void true false null PI TAU INF NAN assert get set tool onready "
    "export abstract"
)
OBJECT_MEMBERS = words(
    "free get set get_class is_class set_script get_script set_meta get_meta has_meta "
    "remove_meta get_meta_list connect disconnect emit_signal is_connected has_signal "
    "add_user_signal has_user_signal remove_user_signal call callv call_deferred set_deferred "
    "notification to_string get_instance_id has_method get_method_list get_property_list "
    "get_signal_list get_signal_connection_list get_incoming_connections "
    "notify_property_list_changed set_block_signals is_blocking_signals tr tr_n get_indexed "
    "set_indexed is_queued_for_deletion cancel_free property_can_revert property_get_revert "
    "get_method_argument_count set_message_translation can_translate_messages script "
    "get_translation_domain set_translation_domain init_ref reference unreference "
    "get_reference_count"
)
GENERATED = {"to_bytes", "from_bytes", "write_to", "merge_from", "PROTO_NAME", "Codec"}
# @GlobalScope utility functions: a member with one of these names only draws a warning.
GLOBAL_FUNCS = words(
    "abs absf absi acos asin atan atan2 ceil clamp cos cosh deg_to_rad ease exp floor fmod "
    "fposmod hash is_equal_approx is_inf is_nan lerp log max min pow print range round seed "
    "sign sin sinh snapped sqrt step str tan tanh type_convert typeof weakref wrap len load "
    "char convert error_string inst_to_dict dict_to_inst randf randi randomize"
)
BUILTIN_TYPES = words(
    "bool int float String Vector2 Vector2i Rect2 Rect2i Vector3 Vector3i Transform2D Vector4 "
    "Vector4i Plane Quaternion AABB Basis Transform3D Projection Color StringName NodePath RID "
    "Object Callable Signal Dictionary Array PackedByteArray PackedInt32Array PackedInt64Array "
    "PackedFloat32Array PackedFloat64Array PackedStringArray PackedVector2Array "
    "PackedVector3Array PackedColorArray PackedVector4Array Variant Error"
)
GD_TYPES = {"double": "float", "float": "float", "bool": "bool", "string": "String",
            "bytes": "PackedByteArray"}  # fmt: skip
GD_DEFAULTS = {"float": "0.0", "bool": "false", "String": '""', "int": "0",
               "PackedByteArray": "PackedByteArray()"}  # fmt: skip
CODEC = "../runtime/proto_codec.gd"


def file_name(package: str) -> str:
    return package.replace(".", "_") + ".gd"


def script_class_name(pfile: ProtoFile) -> str:
    return pfile.csharp_namespace.replace(".", "")


def class_name(msg: Message) -> str:
    return msg.name + "Msg"


def enum_name(enum: Enum) -> str:
    return enum.name + "Enum" if enum.name in BUILTIN_TYPES else enum.name


def field_name(f: Field) -> str:
    name = f.name
    if name in KEYWORDS or name in OBJECT_MEMBERS or name in GENERATED or name.startswith("pb_"):
        return name + "_pb"
    return name


def _package_alias(package: str) -> str:
    return "Pkg" + pascal_case(package.replace(".", "_"))


class _Ctx:
    def __init__(self, package: str) -> None:
        self.package = package
        self.imports: dict[str, str] = {}

    def ref(self, target: Message | Enum) -> str:
        parts = []
        node: Message | Enum | None = target
        while node is not None:
            parts.insert(0, class_name(node) if isinstance(node, Message) else enum_name(node))
            node = node.parent
        if target.file.package != self.package:
            alias = _package_alias(target.file.package)
            self.imports[alias] = file_name(target.file.package)
            parts.insert(0, alias)
        return ".".join(parts)


def generate(package: str, pfiles: list[ProtoFile], header: str) -> str:
    ctx = _Ctx(package)
    body = CodeWriter("\t")
    for pfile in pfiles:
        for msg in pfile.messages:
            body("", "")
            _message(body, ctx, msg)
    w = CodeWriter("\t")
    w(f"# {header}", "# gdlint: disable=max-file-lines,max-public-methods,max-line-length")
    w(f"class_name {script_class_name(pfiles[0])}", "extends RefCounted")
    w(f"## Messages of the protobuf package [code]{package}[/code] (proto3) for Godot 4.", "##")
    w("## Each message is an inner class named after it with a [code]Msg[/code] suffix:")
    w("## [code]var m := ImageMsg.new()[/code], [code]m.to_bytes()[/code],")
    w("## [code]ImageMsg.from_bytes(bytes)[/code] (null when the bytes are malformed).")
    w("## Enum fields are ints (values of the enums below; unknown values are kept).")
    for pfile in pfiles:
        for enum in pfile.enums:
            w("")
            _enum(w, enum)
    w("", f'const Codec = preload("{CODEC}")')
    for alias, path in sorted(ctx.imports.items()):
        w(f'const {alias} = preload("{path}")')
    messages = body.text()
    return w.text() + (messages if messages.strip() else "")


def _doc(w: CodeWriter, text: str) -> None:
    w(*[f"## {line}".rstrip() for line in comment_lines(text)])


def _enum(w: CodeWriter, enum: Enum) -> None:
    _doc(w, enum.comment)
    w(f"enum {enum_name(enum)} {{")
    with w.indented():
        for v in enum.values:
            _doc(w, v.comment)
            w(f"{v.name} = {v.number},")
    w("}")


def _type(ctx: _Ctx, f: Field) -> str:
    if f.is_map:
        return "Dictionary"
    if f.repeated:
        return f"Array[{_elem_type(ctx, f)}]"
    return _elem_type(ctx, f)


def _elem_type(ctx: _Ctx, f: Field) -> str:
    if f.kind == "message":
        return ctx.ref(f.message)
    return GD_TYPES.get(f.kind, "int")


def _default(ctx: _Ctx, f: Field) -> str:
    if f.is_map:
        return "{}"
    if f.repeated:
        return "[]"
    if f.kind == "message":
        return "null"
    return GD_DEFAULTS[_elem_type(ctx, f)]


class _Names:
    def __init__(self, msg: Message) -> None:
        self.field = {f.number: field_name(f) for f in msg.fields}
        self.extra: dict[str, str] = {}
        for f in msg.fields:
            name = self.field[f.number]
            if f.oneof is not None or f.optional:
                self.extra[f"back:{f.number}"] = f"_{name}"
            if f.optional:
                self.extra[f"has:{f.number}"] = f"has_{name}"
                self.extra[f"clear:{f.number}"] = f"clear_{name}"
                self.extra[f"has_back:{f.number}"] = f"_has_{name}"
        for o in msg.oneofs:
            self.extra.update({f"enum:{o.name}": pascal_case(o.name) + "Case"})
            self.extra.update(
                {f"get:{o.name}": f"get_{o.name}_case", f"clear:{o.name}": f"clear_{o.name}"}
            )
            self.extra[f"case:{o.name}"] = f"_{o.name}_case"
        names = list(self.field.values()) + list(self.extra.values())
        if len(set(names)) != len(names) or set(names) & GENERATED:
            raise ModelError(f"{msg.full_name}: generated GDScript member names clash")


def _message(w: CodeWriter, ctx: _Ctx, msg: Message) -> None:
    n, cls = _Names(msg), class_name(msg)
    _doc(w, msg.comment)
    w(f"class {cls}:")
    with w.indented():
        w("extends RefCounted")
        for enum in msg.enums:
            w("")
            _enum(w, enum)
        for o in msg.oneofs:
            w("")
            _doc(w, o.comment)
            w(f"enum {n.extra[f'enum:{o.name}']} {{", "\tNONE = 0,")
            w(*[f"\t{n.field[f.number].upper()} = {f.number}," for f in o.fields], "}")
        w("", f'const PROTO_NAME := "{msg.full_name}"')
        for f in msg.fields:
            _member(w, ctx, n, f)
        for f in msg.fields:
            if f.oneof is not None or f.optional:
                back = n.extra[f"back:{f.number}"]
                w("", f"var {back}: {_type(ctx, f)} = {_default(ctx, f)}")
                if f.optional:
                    w(f"var {n.extra[f'has_back:{f.number}']}: bool = false")
        for o in msg.oneofs:
            w("", f"var {n.extra[f'case:{o.name}']}: int = {n.extra[f'enum:{o.name}']}.NONE")
        for nested in msg.messages:
            w("", "")
            _message(w, ctx, nested)
        _accessors(w, ctx, n, msg)
        w("", "", "func to_bytes() -> PackedByteArray:")
        w("\tvar pb_w := Codec.Writer.new()", "\twrite_to(pb_w)", "\treturn pb_w.buf")
        w("", "", "## Decodes [param bytes]; null when they are not a valid encoding.")
        w(f"static func from_bytes(bytes: PackedByteArray) -> {cls}:")
        w("\tvar pb_r := Codec.Reader.new(bytes)", f"\tvar pb_m := {cls}.new()")
        w("\tpb_m.merge_from(pb_r, bytes.size())", "\tif pb_r.failed:", "\t\treturn null")
        w("\treturn pb_m")
        _write_to(w, ctx, n, msg)
        _merge_from(w, ctx, n, msg)


def _member(w: CodeWriter, ctx: _Ctx, n: _Names, f: Field) -> None:
    name, typ = n.field[f.number], _type(ctx, f)
    w("")
    _doc(w, f.comment)
    if name in GLOBAL_FUNCS:
        w('@warning_ignore("shadowed_global_identifier")')
    if f.oneof is None and not f.optional:
        w(f"var {name}: {typ} = {_default(ctx, f)}")
        return
    back = n.extra[f"back:{f.number}"]
    w(f"var {name}: {typ}:", "\tget:", f"\t\treturn {back}", "\tset(value):")
    with w.indented(), w.indented():
        if f.oneof is None:
            w(f"{back} = value", f"{n.extra[f'has_back:{f.number}']} = true")
            return
        o = f.oneof
        case = f"{n.extra[f'case:{o.name}']} = {n.extra[f'enum:{o.name}']}.{name.upper()}"
        w(f"{n.extra[f'clear:{o.name}']}()", f"{back} = value")
        if f.kind == "message":
            w("if value != null:", f"\t{case}")
        else:
            w(case)


def _accessors(w: CodeWriter, ctx: _Ctx, n: _Names, msg: Message) -> None:
    for f in msg.fields:
        if f.optional:
            back, has = n.extra[f"back:{f.number}"], n.extra[f"has_back:{f.number}"]
            w("", "", f"func {n.extra[f'has:{f.number}']}() -> bool:", f"\treturn {has}")
            w("", "", f"func {n.extra[f'clear:{f.number}']}() -> void:")
            w(f"\t{back} = {_default(ctx, f)}", f"\t{has} = false")
    for o in msg.oneofs:
        w(
            "",
            "",
            f"## The member of [code]{o.name}[/code] that is set ({n.extra[f'enum:{o.name}']}).",
        )
        w(f"func {n.extra[f'get:{o.name}']}() -> int:", f"\treturn {n.extra[f'case:{o.name}']}")
        w("", "", f"func {n.extra[f'clear:{o.name}']}() -> void:")
        for f in o.fields:
            w(f"\t{n.extra[f'back:{f.number}']} = {_default(ctx, f)}")
        w(f"\t{n.extra[f'case:{o.name}']} = {n.extra[f'enum:{o.name}']}.NONE")


def _present(ctx: _Ctx, n: _Names, f: Field) -> str:
    name = n.field[f.number]
    if f.oneof is not None:
        o = f.oneof
        return f"{n.extra[f'case:{o.name}']} == {n.extra[f'enum:{o.name}']}.{name.upper()}"
    if f.optional:
        return n.extra[f"has_back:{f.number}"]
    if f.kind == "message":
        return f"{name} != null"
    if f.kind in ("string", "bytes"):
        return f"not {name}.is_empty()"
    if f.kind == "bool":
        return name
    if f.kind in ("float", "double"):
        return f"not Codec.float_is_zero({name})"
    return f"{name} != 0"


def _write(f: Field, writer: str, ref: str) -> str:
    return f"{writer}.write_{f.kind}({ref})"


def _write_to(w: CodeWriter, ctx: _Ctx, n: _Names, msg: Message) -> None:
    w("", "", f"func write_to({'pb_w' if msg.fields else '_pb_w'}: Codec.Writer) -> void:")
    with w.indented():
        if not msg.fields:
            w("pass")
        for f in msg.fields_by_number:
            name, num = n.field[f.number], f.number
            if f.is_map:
                k, v = f.map_key, f.map_value
                w(f"for pb_k in {name}:")
                w(f"\tvar pb_e_{num} := Codec.Writer.new()")
                w(
                    f"\tpb_e_{num}.write_varint({tag(1, k.wire_type)})",
                    f"\t{_write(k, f'pb_e_{num}', 'pb_k')}",
                )  # noqa: E501
                w(
                    f"\tpb_e_{num}.write_varint({tag(2, v.wire_type)})",
                    f"\t{_write(v, f'pb_e_{num}', f'{name}[pb_k]')}",
                )  # noqa: E501
                w(f"\tpb_w.write_varint({tag(num, LEN)})", f"\tpb_w.write_bytes(pb_e_{num}.buf)")
            elif f.packed:
                w(f"if not {name}.is_empty():", f"\tvar pb_p_{num} := Codec.Writer.new()")
                w(f"\tfor pb_v in {name}:", f"\t\t{_write(f, f'pb_p_{num}', 'pb_v')}")
                w(f"\tpb_w.write_varint({tag(num, LEN)})", f"\tpb_w.write_bytes(pb_p_{num}.buf)")
            elif f.repeated:
                w(f"for pb_v in {name}:", f"\tpb_w.write_varint({tag(num, f.wire_type)})")
                w(f"\t{_write(f, 'pb_w', 'pb_v')}")
            else:
                w(f"if {_present(ctx, n, f)}:", f"\tpb_w.write_varint({tag(num, f.wire_type)})")
                w(f"\t{_write(f, 'pb_w', name)}")


def _read(f: Field) -> str:
    return f"pb_r.read_{f.kind}()"


def _merge_from(w: CodeWriter, ctx: _Ctx, n: _Names, msg: Message) -> None:
    w("", "", "func merge_from(pb_r: Codec.Reader, pb_end: int) -> void:")
    with w.indented():
        w("while pb_r.pos < pb_end:", "\tvar pb_tag := pb_r.read_tag()")
        with w.indented():
            w("match pb_tag:")
            with w.indented():
                for f in msg.fields_by_number:
                    _merge_case(w, ctx, n, f)
                w("_:", "\tpb_r.skip_field(pb_tag)")
        w("if pb_r.pos != pb_end:", "\tpb_r.fail()")


def _merge_case(w: CodeWriter, ctx: _Ctx, n: _Names, f: Field) -> None:
    name, num = n.field[f.number], f.number
    if f.repeated and not f.is_map and f.wire_type != LEN:
        w(f"{tag(num, LEN)}:", f"\tvar pb_end_{num} := pb_r.read_length_end()")
        w(f"\twhile pb_r.pos < pb_end_{num}:", f"\t\t{name}.append({_read(f)})")
        w(f"\tif pb_r.pos != pb_end_{num}:", "\t\tpb_r.fail()")
    w(f"{tag(num, f.wire_type)}:")
    with w.indented():
        if f.is_map:
            _merge_map_entry(w, ctx, f, name)
        elif f.repeated and f.kind == "message":
            w(f"var pb_m_{num} := {ctx.ref(f.message)}.new()", f"pb_r.read_message(pb_m_{num})")
            w(f"{name}.append(pb_m_{num})")
        elif f.repeated:
            w(f"{name}.append({_read(f)})")
        elif f.kind == "message" and f.oneof is not None:
            typ, back, o = ctx.ref(f.message), n.extra[f"back:{f.number}"], f.oneof
            current = f"{n.extra[f'case:{o.name}']} == {n.extra[f'enum:{o.name}']}.{name.upper()}"
            w(f"var pb_m_{num}: {typ} = {back} if {current} else {typ}.new()")
            w(f"pb_r.read_message(pb_m_{num})", f"{name} = pb_m_{num}")
        elif f.kind == "message":
            w(f"if {name} == null:", f"\t{name} = {ctx.ref(f.message)}.new()")
            w(f"pb_r.read_message({name})")
        else:
            w(f"{name} = {_read(f)}")


def _merge_map_entry(w: CodeWriter, ctx: _Ctx, f: Field, name: str) -> None:
    k, v, num = f.map_key, f.map_value, f.number
    w(f"var pb_end_{num} := pb_r.read_length_end()")
    w(f"var pb_k_{num}: {_elem_type(ctx, k)} = {_default(ctx, k)}")
    w(f"var pb_v_{num}: {_elem_type(ctx, v)} = {_default(ctx, v)}")
    w(f"while pb_r.pos < pb_end_{num}:", f"\tvar pb_t_{num} := pb_r.read_tag()")
    w(f"\tif pb_t_{num} == {tag(1, k.wire_type)}:", f"\t\tpb_k_{num} = {_read(k)}")
    w(f"\telif pb_t_{num} == {tag(2, v.wire_type)}:")
    if v.kind == "message":
        w(f"\t\tif pb_v_{num} == null:", f"\t\t\tpb_v_{num} = {ctx.ref(v.message)}.new()")
        w(f"\t\tpb_r.read_message(pb_v_{num})")
    else:
        w(f"\t\tpb_v_{num} = {_read(v)}")
    w("\telse:", f"\t\tpb_r.skip_field(pb_t_{num})")
    w(f"if pb_r.pos != pb_end_{num}:", "\tpb_r.fail()")
    if v.kind == "message":
        w(f"if pb_v_{num} == null:", f"\tpb_v_{num} = {ctx.ref(v.message)}.new()")
    w(f"{name}[pb_k_{num}] = pb_v_{num}")
