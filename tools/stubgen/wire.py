"""Proto3 wire-format facts per scalar type, shared by the emitters."""

from __future__ import annotations

VARINT = 0
FIXED64 = 1
LEN = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

# Scalar kinds by their descriptor names (FieldDescriptorProto.Type without TYPE_, lower case),
# plus "message" and "enum".
WIRE_TYPES = {
    "double": FIXED64,
    "float": FIXED32,
    "int64": VARINT,
    "uint64": VARINT,
    "int32": VARINT,
    "fixed64": FIXED64,
    "fixed32": FIXED32,
    "bool": VARINT,
    "string": LEN,
    "message": LEN,
    "bytes": LEN,
    "uint32": VARINT,
    "enum": VARINT,
    "sfixed32": FIXED32,
    "sfixed64": FIXED64,
    "sint32": VARINT,
    "sint64": VARINT,
}

# Fixed-width payload sizes, for packed-size arithmetic.
FIXED_SIZES = {"double": 8, "fixed64": 8, "sfixed64": 8, "float": 4, "fixed32": 4, "sfixed32": 4}

INTEGER_KINDS = frozenset(
    ["int32", "int64", "uint32", "uint64", "sint32", "sint64"]
    + ["fixed32", "fixed64", "sfixed32", "sfixed64"]
)
FLOAT_KINDS = frozenset(["float", "double"])


def wire_type(kind: str) -> int:
    return WIRE_TYPES[kind]


def is_packable(kind: str) -> bool:
    """Scalar numeric types and enums: repeated ones are packed by default in proto3."""
    return WIRE_TYPES[kind] != LEN


def tag(number: int, wire: int) -> int:
    return (number << 3) | wire
