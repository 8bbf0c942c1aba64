"""C# names and types shared by the C# emitter modules (csharp.py, csharp_codec.py)."""

from __future__ import annotations

from .model import Enum, Field, Message, ModelError, ProtoFile
from .text import camel_case, pascal_case, words

RT = "global::PixelKiln.Protobuf"
PW = f"{RT}.ProtoWriter"
CS_TYPES = {
    "double": "double", "float": "float", "int64": "long", "uint64": "ulong", "int32": "int",
    "fixed64": "ulong", "fixed32": "uint", "bool": "bool", "string": "string",
    "bytes": "byte[]", "uint32": "uint", "sfixed32": "int", "sfixed64": "long", "sint32": "int",
    "sint64": "long",
}  # fmt: skip
CS_DEFAULTS = {
    "double": "0D", "float": "0F", "int64": "0L", "uint64": "0UL", "int32": "0", "fixed64": "0UL",
    "fixed32": "0U", "bool": "false", "string": '""', "bytes": f"{RT}.ProtoMessage.EmptyBytes",
    "uint32": "0U", "sfixed32": "0", "sfixed64": "0L", "sint32": "0", "sint64": "0L",
}  # fmt: skip
KIND_METHOD = {
    "double": "Double", "float": "Float", "int64": "Int64", "uint64": "UInt64", "int32": "Int32",
    "fixed64": "Fixed64", "fixed32": "Fixed32", "bool": "Bool", "string": "String",
    "bytes": "Bytes", "uint32": "UInt32", "sfixed32": "SFixed32", "sfixed64": "SFixed64",
    "sint32": "SInt32", "sint64": "SInt64", "enum": "Enum", "message": "Message",
}  # fmt: skip
# Members every generated class has; a field whose property would clash gets a "_" suffix.
RESERVED = {
    "Parser", "ProtoName", "ToByteArray", "Clone", "CalculateSize", "WriteTo", "MergeFrom",
    "Types", "Equals", "GetHashCode", "ToString", "GetType", "MemberwiseClone", "Finalize",
}  # fmt: skip
CS_KEYWORDS = words(
    "abstract as base bool break byte case catch char checked class const continue decimal "
    "default delegate do double else enum event explicit extern false finally fixed float for "
    "foreach goto if implicit in int interface internal is lock long namespace new null object "
    "operator out override params private protected public readonly ref return sbyte sealed "
    "short sizeof stackalloc static string struct switch this throw true try typeof uint ulong "
    "unchecked unsafe ushort using virtual void volatile while"
)


def file_name(pfile: ProtoFile) -> str:
    base = pfile.name.rsplit("/", 1)[-1].removesuffix(".proto")
    return pascal_case(base) + ".cs"


def type_name(target: Message | Enum) -> str:
    """Fully qualified C# name: nested types live in the parent's ``Types`` class."""
    parts = [ident(target.name)]
    parent = target.parent
    while parent is not None:
        parts[:0] = [ident(parent.name), "Types"]
        parent = parent.parent
    return f"global::{target.file.csharp_namespace}." + ".".join(parts)


def ident(name: str) -> str:
    return f"@{name}" if name in CS_KEYWORDS else name


class Names:
    """Member names of one message class: properties, backing fields, oneof members."""

    def __init__(self, msg: Message) -> None:
        self.cls = ident(msg.name)
        taken = set(RESERVED) | {msg.name}
        self.prop: dict[int, str] = {}
        self.field: dict[int, str] = {}
        for f in msg.fields:
            name = pascal_case(f.name)
            while name in taken:
                name += "_"
            self.prop[f.number] = name
            self.field[f.number] = name[:1].lower() + name[1:] + "_"
            taken.add(name)
        self.extra: dict[str, str] = {}
        for o in msg.oneofs:
            base = pascal_case(o.name)
            self.extra.update(
                {f"case_enum:{o.name}": f"{base}OneofCase", f"case:{o.name}": f"{base}Case"}
            )
            self.extra.update(
                {f"clear:{o.name}": f"Clear{base}", f"value:{o.name}": f"{camel_case(base)}_"}
            )
            self.extra[f"case_field:{o.name}"] = f"{camel_case(base)}Case_"
        for f in msg.fields:
            if f.optional:
                prop = self.prop[f.number]
                self.extra[f"has:{f.number}"] = f"Has{prop}"
                self.extra[f"clear:{f.number}"] = f"Clear{prop}"
                self.extra[f"has_field:{f.number}"] = f"has{prop}_"
        clashes = set(self.extra.values()) & (taken | set(self.field.values()))
        if len(set(self.extra.values())) != len(self.extra) or clashes:
            raise ModelError(f"{msg.full_name}: generated C# member names clash: {sorted(clashes)}")


def cs_type(f: Field) -> str:
    if f.is_map:
        return f"global::System.Collections.Generic.Dictionary<{elem_type(f.map_key)}, {elem_type(f.map_value)}>"  # noqa: E501
    if f.repeated:
        return f"global::System.Collections.Generic.List<{elem_type(f)}>"
    return elem_type(f)


def elem_type(f: Field) -> str:
    if f.kind == "message":
        return type_name(f.message)
    if f.kind == "enum":
        return type_name(f.enum)
    return CS_TYPES[f.kind]


def default_value(f: Field) -> str:
    if f.kind == "message":
        return "null"
    if f.kind == "enum":
        return f"({type_name(f.enum)})0"
    return CS_DEFAULTS[f.kind]
