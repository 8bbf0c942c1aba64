"""Read proto3 descriptors with protoc and turn them into a small language-neutral model.

The emitters only see this model: files, messages (with nested messages and enums), enums,
fields (scalar kind, repeated, packed, proto3 ``optional``, map key/value, oneof) and real
oneofs (proto3 ``optional`` creates a synthetic oneof, which is folded into the field instead).
Leading comments from the .proto files travel along so that the stubs carry the docs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2

from . import wire

_LABEL_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_KIND_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()
}

# SourceCodeInfo path components (field numbers in descriptor.proto).
_FILE_MESSAGE, _FILE_ENUM = 4, 5
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM, _MSG_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2


class ModelError(Exception):
    """The descriptors use something the generator does not support."""


@dataclass
class EnumValue:
    name: str
    number: int
    comment: str = ""


@dataclass
class Enum:
    full_name: str
    name: str
    values: list[EnumValue]
    file: ProtoFile
    parent: Message | None = None
    comment: str = ""


@dataclass
class Field:
    name: str
    number: int
    kind: str  # a key of wire.WIRE_TYPES
    type_name: str = ""  # full name (no leading dot) of a message or enum
    repeated: bool = False
    packed: bool = False
    optional: bool = False  # proto3 `optional` on a scalar or enum: explicit presence (HasX)
    oneof: Oneof | None = None
    map_key: Field | None = None
    map_value: Field | None = None
    comment: str = ""
    message: Message | None = None  # resolved target for kind == "message" (not for maps)
    enum: Enum | None = None  # resolved target for kind == "enum"

    @property
    def is_map(self) -> bool:
        return self.map_key is not None

    @property
    def wire_type(self) -> int:
        return wire.wire_type(self.kind)


@dataclass
class Oneof:
    name: str
    fields: list[Field] = field(default_factory=list)
    comment: str = ""


@dataclass
class Message:
    full_name: str
    name: str
    file: ProtoFile
    parent: Message | None = None
    fields: list[Field] = field(default_factory=list)
    oneofs: list[Oneof] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)
    comment: str = ""

    @property
    def fields_by_number(self) -> list[Field]:
        return sorted(self.fields, key=lambda f: f.number)


@dataclass
class ProtoFile:
    name: str  # path as given to protoc, e.g. pixelkiln/v1/image.proto
    package: str
    csharp_namespace: str
    messages: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)


@dataclass
class Model:
    files: list[ProtoFile]  # the files to generate, sorted by name
    types: dict[str, Message | Enum]  # every message and enum of every loaded file


def run_protoc(roots: list[Path], files: list[str]) -> descriptor_pb2.FileDescriptorSet:
    """Compile ``files`` (relative to one of ``roots``) into a FileDescriptorSet with imports."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "descriptors.pb"
        args = [
            "protoc",
            *[f"-I{root}" for root in roots],
            f"-I{well_known}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            "--include_source_info",
            *files,
        ]
        if protoc.main(args) != 0:
            raise ModelError(f"protoc failed on {files}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def load(roots: list[Path], files: list[str]) -> Model:
    """Run protoc over ``files`` and build the model of exactly those files."""
    return build_model(run_protoc(roots, files), set(files))


def build_model(fds: descriptor_pb2.FileDescriptorSet, generate: set[str]) -> Model:
    builder = _Builder()
    files: list[ProtoFile] = []
    for fdp in fds.file:
        pfile = builder.file(fdp)
        if fdp.name in generate:
            if fdp.syntax != "proto3":
                raise ModelError(f"{fdp.name}: only proto3 is supported (syntax={fdp.syntax!r})")
            files.append(pfile)
    missing = generate - {f.name for f in files}
    if missing:
        raise ModelError(f"not in the descriptor set: {sorted(missing)}")
    builder.resolve()
    return Model(files=sorted(files, key=lambda f: f.name), types=builder.types)


def _comments(fdp: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    out: dict[tuple[int, ...], str] = {}
    for loc in fdp.source_code_info.location:
        text = loc.leading_comments.strip("\n")
        if text:
            lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
            out[tuple(loc.path)] = "\n".join(line.rstrip() for line in lines).strip()
    return out


def _default_namespace(package: str) -> str:
    return ".".join(part[:1].upper() + part[1:] for part in package.split(".") if part)


class _Builder:
    """Builds the model file by file; message and enum references are resolved at the end."""

    def __init__(self) -> None:
        self.types: dict[str, Message | Enum] = {}
        self.pending: list[Field] = []  # fields whose type_name still needs resolving
        self.comments: dict[tuple[int, ...], str] = {}

    def file(self, fdp: descriptor_pb2.FileDescriptorProto) -> ProtoFile:
        namespace = fdp.options.csharp_namespace or _default_namespace(fdp.package)
        pfile = ProtoFile(fdp.name, fdp.package, namespace, dependencies=list(fdp.dependency))
        self.comments = _comments(fdp)
        prefix = f"{fdp.package}." if fdp.package else ""
        for i, edp in enumerate(fdp.enum_type):
            pfile.enums.append(self.enum(edp, prefix, pfile, None, (_FILE_ENUM, i)))
        for i, mdp in enumerate(fdp.message_type):
            pfile.messages.append(self.message(mdp, prefix, pfile, None, (_FILE_MESSAGE, i)))
        return pfile

    def resolve(self) -> None:
        for fld in self.pending:
            target = self.types.get(fld.type_name)
            if target is None:
                raise ModelError(f"unresolved type {fld.type_name}")
            if isinstance(target, Message):
                fld.message = target
            else:
                fld.enum = target

    def enum(self, edp, prefix: str, pfile: ProtoFile, parent, path: tuple) -> Enum:
        values = [
            EnumValue(v.name, v.number, self.comments.get((*path, _ENUM_VALUE, j), ""))
            for j, v in enumerate(edp.value)
        ]
        comment = self.comments.get(path, "")
        enum = Enum(prefix + edp.name, edp.name, values, pfile, parent, comment)
        self.types[enum.full_name] = enum
        return enum

    def message(self, mdp, prefix: str, pfile: ProtoFile, parent, path: tuple) -> Message:
        full_name = prefix + mdp.name
        msg = Message(full_name, mdp.name, pfile, parent, comment=self.comments.get(path, ""))
        self.types[full_name] = msg
        entries = {}  # map<K, V> fields point at synthetic nested "...Entry" messages
        for j, nested in enumerate(mdp.nested_type):
            if nested.options.map_entry:
                entries[f"{full_name}.{nested.name}"] = nested
            else:
                sub_path = (*path, _MSG_NESTED, j)
                msg.messages.append(self.message(nested, full_name + ".", pfile, msg, sub_path))
        for j, edp in enumerate(mdp.enum_type):
            msg.enums.append(self.enum(edp, full_name + ".", pfile, msg, (*path, _MSG_ENUM, j)))
        synthetic = {f.oneof_index for f in mdp.field if f.proto3_optional}
        oneofs: dict[int, Oneof] = {}
        for j, odp in enumerate(mdp.oneof_decl):
            if j not in synthetic:  # proto3 `optional` makes a one-field "synthetic" oneof
                oneofs[j] = Oneof(odp.name, comment=self.comments.get((*path, _MSG_ONEOF, j), ""))
        for j, fdp in enumerate(mdp.field):
            entry = entries.get(fdp.type_name.lstrip("."))
            if entry is not None and fdp.label == _LABEL_REPEATED:
                fld = self.field(fdp, self.comments.get((*path, _MSG_FIELD, j), ""), resolve=False)
                fld.map_key = self.field(entry.field[0], "")
                fld.map_value = self.field(entry.field[1], "")
                fld.type_name, fld.packed = "", False
            else:
                fld = self.field(fdp, self.comments.get((*path, _MSG_FIELD, j), ""))
            if fdp.HasField("oneof_index") and fdp.oneof_index in oneofs:
                fld.oneof = oneofs[fdp.oneof_index]
                fld.oneof.fields.append(fld)
            msg.fields.append(fld)
        msg.oneofs = [oneofs[j] for j in sorted(oneofs)]
        return msg

    def field(self, fdp, comment: str, resolve: bool = True) -> Field:
        kind = _KIND_NAMES[fdp.type]
        if kind == "group":
            raise ModelError(f"field {fdp.name}: groups are not supported")
        if fdp.HasField("extendee"):
            raise ModelError(f"field {fdp.name}: extensions are not supported")
        repeated = fdp.label == _LABEL_REPEATED
        packed = repeated and wire.is_packable(kind)
        if packed and fdp.options.HasField("packed"):
            packed = fdp.options.packed
        fld = Field(
            name=fdp.name,
            number=fdp.number,
            kind=kind,
            type_name=fdp.type_name.lstrip("."),
            repeated=repeated,
            packed=packed,
            optional=fdp.proto3_optional and kind != "message",  # messages always have presence
            comment=comment,
        )
        if resolve and kind in ("message", "enum"):
            self.pending.append(fld)
        return fld
