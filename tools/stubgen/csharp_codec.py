"""C# emitter, wire part: CalculateSize, WriteTo and MergeFrom of one message class."""

from __future__ import annotations

from .csharp_types import (
    CS_DEFAULTS,
    KIND_METHOD,
    PW,
    RT,
    Names,
    default_value,
    elem_type,
    type_name,
)
from .model import Field, Message
from .text import CodeWriter, varint_size
from .wire import FIXED_SIZES, LEN, tag


def _present(n: Names, f: Field) -> str:
    """The condition under which a singular field is written."""
    ref = n.field[f.number]
    if f.oneof is not None:
        o = f.oneof
        return f"{n.extra[f'case_field:{o.name}']} == {n.extra[f'case_enum:{o.name}']}.{n.prop[f.number]}"  # noqa: E501
    if f.optional:
        return n.extra[f"has_field:{f.number}"]
    if f.kind == "message":
        return f"{ref} != null"
    if f.kind in ("string", "bytes"):
        return f"{ref}.Length != 0"
    if f.kind == "bool":
        return ref
    if f.kind == "float":  # bitwise, as upb does: -0.0 and NaN are written
        return f"{PW}.FloatToBits({ref}) != 0U"
    if f.kind == "double":
        return f"global::System.BitConverter.DoubleToInt64Bits({ref}) != 0L"
    if f.kind == "enum":
        return f"(int){ref} != 0"
    return f"{ref} != {CS_DEFAULTS[f.kind]}"


def _value_ref(n: Names, f: Field) -> str:
    return n.prop[f.number] if f.oneof is not None else n.field[f.number]


def _size_of(f: Field, ref: str) -> str:
    if f.kind in FIXED_SIZES:
        return str(FIXED_SIZES[f.kind])
    if f.kind == "bool":
        return "1"
    if f.kind == "enum":
        return f"{PW}.ComputeEnumSize((int){ref})"
    return f"{PW}.Compute{KIND_METHOD[f.kind]}Size({ref})"


def _write_value(f: Field, ref: str) -> str:
    arg = f"(int){ref}" if f.kind == "enum" else ref
    return f"output.Write{KIND_METHOD[f.kind]}({arg});"


def _tag(f: Field, wire: int | None = None) -> int:
    return tag(f.number, f.wire_type if wire is None else wire)


def calculate_size(w: CodeWriter, n: Names, msg: Message) -> None:
    w("public int CalculateSize()", "{")
    with w.indented():
        w("int size = 0;")
        for f in msg.fields_by_number:
            back, tsize = n.field[f.number], varint_size(_tag(f))
            if f.is_map:
                w(f"foreach (var entry in {back})", "{")
                w(f"    int entrySize = {_entry_size(f)};")
                w(f"    size += {tsize} + {PW}.ComputeLengthSize(entrySize) + entrySize;", "}")
            elif f.packed:
                w(f"if ({back}.Count != 0)", "{")
                with w.indented():
                    _packed_size(w, f, back)
                    w(f"size += {tsize} + {PW}.ComputeLengthSize(packedSize) + packedSize;")
                w("}")
            elif f.repeated:
                w(f"for (int i = 0; i < {back}.Count; i++)", "{")
                w(f"    size += {tsize} + {_size_of(f, f'{back}[i]')};", "}")
            else:
                w(f"if ({_present(n, f)}) size += {tsize} + {_size_of(f, _value_ref(n, f))};")
        w("return size;")
    w("}", "")


def _entry_size(f: Field) -> str:
    k, v = f.map_key, f.map_value
    return (
        f"{varint_size(_tag(k))} + {_size_of(k, 'entry.Key')} + "
        f"{varint_size(_tag(v))} + {_size_of(v, 'entry.Value')}"
    )


def _packed_size(w: CodeWriter, f: Field, back: str) -> None:
    if f.kind in FIXED_SIZES:
        w(f"int packedSize = {back}.Count * {FIXED_SIZES[f.kind]};")
        return
    w("int packedSize = 0;")
    w(f"for (int i = 0; i < {back}.Count; i++) packedSize += {_size_of(f, f'{back}[i]')};")


def write_to(w: CodeWriter, n: Names, msg: Message) -> None:
    w(f"public void WriteTo({PW} output)", "{")
    with w.indented():
        for f in msg.fields_by_number:
            back = n.field[f.number]
            if f.is_map:
                k, v = f.map_key, f.map_value
                w(f"foreach (var entry in {back})", "{")
                with w.indented():
                    w(f"output.WriteTag({_tag(f)});", f"output.WriteLength({_entry_size(f)});")
                    w(f"output.WriteTag({_tag(k)});", _write_value(k, "entry.Key"))
                    w(f"output.WriteTag({_tag(v)});", _write_value(v, "entry.Value"))
                w("}")
            elif f.packed:
                w(f"if ({back}.Count != 0)", "{")
                with w.indented():
                    _packed_size(w, f, back)
                    w(f"output.WriteTag({_tag(f, LEN)});", "output.WriteLength(packedSize);")
                    w(f"for (int i = 0; i < {back}.Count; i++) {_write_value(f, f'{back}[i]')}")
                w("}")
            elif f.repeated:
                w(f"for (int i = 0; i < {back}.Count; i++)", "{")
                w(f"    output.WriteTag({_tag(f)});", f"    {_write_value(f, f'{back}[i]')}", "}")
            else:
                w(f"if ({_present(n, f)})", "{")
                w(f"    output.WriteTag({_tag(f)});", f"    {_write_value(f, _value_ref(n, f))}")
                w("}")
    w("}", "")


def _read_value(f: Field) -> str:
    if f.kind == "enum":
        return f"({type_name(f.enum)})input.ReadEnum()"
    return f"input.Read{KIND_METHOD[f.kind]}()"


def merge_from(w: CodeWriter, n: Names, msg: Message) -> None:
    w(f"public void MergeFrom({RT}.ProtoReader input)", "{")
    with w.indented():
        w("uint tag;", "while ((tag = input.ReadTag()) != 0)", "{")
        with w.indented():
            w("switch (tag)", "{")
            with w.indented():
                for f in msg.fields_by_number:
                    _merge_case(w, n, f)
                w("default:", "    input.SkipField(tag);", "    break;")
            w("}")
        w("}")
    w("}")


def _merge_case(w: CodeWriter, n: Names, f: Field) -> None:
    back, prop = n.field[f.number], n.prop[f.number]
    if f.repeated and not f.is_map and f.wire_type != LEN:
        w(f"case {_tag(f, LEN)}:", "{")
        with w.indented():
            w("int oldLimit = input.PushLimit(input.ReadLength());")
            w(f"while (!input.IsAtEnd) {back}.Add({_read_value(f)});")
            w("input.PopLimit(oldLimit);", "break;")
        w("}")
    w(f"case {_tag(f)}:", "{")
    with w.indented():
        if f.is_map:
            _merge_map_entry(w, f, back)
        elif f.repeated and f.kind == "message":
            w(
                f"var item = new {elem_type(f)}();",
                "input.ReadMessage(item);",
                f"{back}.Add(item);",
            )
        elif f.repeated:
            w(f"{back}.Add({_read_value(f)});")
        elif f.kind == "message" and f.oneof is not None:
            typ = elem_type(f)
            w(f"{typ} item = {prop} ?? new {typ}();", "input.ReadMessage(item);", f"{prop} = item;")
        elif f.kind == "message":
            w(f"if ({back} == null) {back} = new {elem_type(f)}();", f"input.ReadMessage({back});")
        elif f.oneof is not None or f.optional:
            w(f"{prop} = {_read_value(f)};")
        else:
            w(f"{back} = {_read_value(f)};")
        w("break;")
    w("}")


def _merge_map_entry(w: CodeWriter, f: Field, back: str) -> None:
    k, v = f.map_key, f.map_value
    w(f"{elem_type(k)} key = {default_value(k)};", f"{elem_type(v)} value = {default_value(v)};")
    w("int oldLimit = input.PushLimit(input.ReadLength());", "uint entryTag;")
    w("while ((entryTag = input.ReadTag()) != 0)", "{")
    with w.indented():
        w(f"if (entryTag == {_tag(k)}) key = {_read_value(k)};")
        if v.kind == "message":
            w(f"else if (entryTag == {_tag(v)})", "{")
            w(
                f"    if (value == null) value = new {elem_type(v)}();",
                "    input.ReadMessage(value);",
            )
            w("}")
        else:
            w(f"else if (entryTag == {_tag(v)}) value = {_read_value(v)};")
        w("else input.SkipField(entryTag);")
    w("}", "input.PopLimit(oldLimit);")
    if v.kind == "message":
        w(f"if (value == null) value = new {elem_type(v)}();")
    w(f"{back}[key] = value;")
