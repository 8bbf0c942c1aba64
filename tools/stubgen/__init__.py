"""Stub generator for the engine clients: proto3 descriptors in, dependency-free code out.

Module map (a module imports only the ones listed before it):

    wire.py          proto3 wire facts per scalar type (wire type, fixed sizes, packability)
    text.py          an indenting line writer and the naming rules (protoc's C# casing)
    model.py         runs protoc (grpcio-tools) for a FileDescriptorSet and builds a small
                     language-neutral model: files, messages, enums, fields, oneofs, maps
    csharp_types.py  C# type names, defaults and member names of a message class
    csharp_codec.py  C# CalculateSize / WriteTo / MergeFrom bodies
    csharp.py        C# emitter: one .cs file per .proto (netstandard2.1, Unity, Godot .NET, mcs)
    gdscript.py      GDScript emitter: one .gd file per proto package (Godot 4)

``tools/gen_stubs.py`` is the command line: it writes the files, or checks them (``--check``).
Nothing here is specific to today's messages: every message, enum, oneof, optional, repeated
and map field of the descriptors is emitted the same way.
"""
