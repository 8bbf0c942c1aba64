"""Shared wire test vectors for the C# and GDScript stubs, made with Python's protobuf.

    python tests/stubs/make_vectors.py OUT_DIR

writes OUT_DIR/vectors: ``<name>.bin`` for every vector and ``manifest.tsv`` (name, message
type, and ``ok`` or ``error`` when the input is malformed and must be rejected); also
OUT_DIR/stubs (C# and GDScript stubs of the test-only proto) and OUT_DIR/godot (the generated
scripts laid out as in a Godot project), for running the harnesses by hand.

Each vector also knows the bytes a conforming decoder + encoder must produce (``expected``):
Python's own canonical encoding of the parsed message with unknown fields dropped (our stubs
skip them), so packed/unpacked input, duplicated fields, overlong varints and odd map entries
are all judged by protobuf itself. Map entries are given in the order Python's deterministic
encoding writes them, since the stubs keep insertion order. ``spots`` are field values that
the harnesses print after decoding (enums and oneof cases as numbers, uint64 as unsigned
decimal, bools as True/False).

Contract messages come from the generated ``pixelkiln.v1.*_pb2`` modules; the field types the
contract lacks come from the test-only ``tests/protos/stubtest/v1/all_types.proto``.
"""

from __future__ import annotations

import math
import pkgutil
import random
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor

ROOT = Path(__file__).resolve().parents[2]
TEST_PROTO_ROOT = ROOT / "tests" / "protos"
TEST_PROTO = "stubtest/v1/all_types.proto"
LARGE = 1536 * 1024  # bytes of the large image payloads (>= 1 MiB)
UNICODE = 'Grüße, ✓ 🎨 中文 — ﬁ \\ "q"'


@dataclass
class Vector:
    name: str
    type_name: str
    data: bytes
    expected: bytes = b""
    error: bool = False
    spots: dict[str, str] = field(default_factory=dict)
    # What Godot's String makes of it, where that differs (see clients/gdscript/README.md).
    expected_gd: bytes | None = None


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


# Unknown fields of every wire type, a group with nested content included.
UNKNOWN = (
    _key(1000, 0) + _varint(2**64 - 1)
    + _key(1001, 1) + b"\x01" * 8
    + _len(1002, b"unknown \xff bytes")
    + _key(1003, 5) + b"\x02" * 4
    + _key(1004, 3) + _key(1, 0) + b"\x05" + _key(2, 3) + _key(2, 4) + _key(1004, 4)
)  # fmt: skip


def stubtest_classes() -> dict[str, Any]:
    """Message classes of the test-only proto, in a private pool (built by protoc here)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from stubgen.model import run_protoc

    fds = run_protoc([ROOT / "proto", TEST_PROTO_ROOT], [TEST_PROTO])
    return message_factory.GetMessages(list(fds.file), pool=descriptor_pool.DescriptorPool())


def contract_classes() -> dict[str, Any]:
    """Every message class of the generated pixelkiln.v1 modules, by full name."""
    package = import_module("pixelkiln.v1")
    classes: dict[str, Any] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.endswith("_pb2"):
            module = import_module(f"pixelkiln.v1.{info.name}")
            for name in module.DESCRIPTOR.message_types_by_name:
                _collect(getattr(module, name), classes)
    return classes


def _collect(cls: Any, out: dict[str, Any]) -> None:
    if cls.DESCRIPTOR.GetOptions().map_entry:
        return
    out[cls.DESCRIPTOR.full_name] = cls
    for nested in cls.DESCRIPTOR.nested_types:
        _collect(getattr(cls, nested.name), out)


# ---- generic filling: every field of any message gets a non-default value ---------------

_SAMPLES = {
    FieldDescriptor.TYPE_INT32: -123456, FieldDescriptor.TYPE_INT64: -(2**40) - 7,
    FieldDescriptor.TYPE_UINT32: 4_000_000_000, FieldDescriptor.TYPE_UINT64: 2**64 - 2,
    FieldDescriptor.TYPE_SINT32: -77, FieldDescriptor.TYPE_SINT64: -(2**50),
    FieldDescriptor.TYPE_FIXED32: 0xDEADBEEF, FieldDescriptor.TYPE_FIXED64: 2**64 - 3,
    FieldDescriptor.TYPE_SFIXED32: -5, FieldDescriptor.TYPE_SFIXED64: -(2**60),
    FieldDescriptor.TYPE_FLOAT: 1.5, FieldDescriptor.TYPE_DOUBLE: -2.25e100,
    FieldDescriptor.TYPE_BOOL: True,
}  # fmt: skip


def _sample(fd: FieldDescriptor, salt: int) -> Any:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return f"{fd.name} ✓ {salt}"
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return bytes([fd.number & 0xFF, salt & 0xFF, 0, 255])
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return fd.enum_type.values[-1].number if salt == 0 else 99  # 99: an unknown value
    value = _SAMPLES[fd.type]
    return value if salt == 0 or fd.type == FieldDescriptor.TYPE_BOOL else value // (salt + 1)


def fill(msg: Any, depth: int = 0, oneof_choice: dict[str, str] | None = None) -> Any:
    """Set every field (one member per oneof) to a non-default value; recursion stops at 3."""
    chosen = dict(oneof_choice or {})
    for fd in msg.DESCRIPTOR.fields:
        oneof = fd.containing_oneof
        if oneof is not None and chosen.setdefault(oneof.name, fd.name) != fd.name:
            continue
        is_message = fd.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and fd.message_type.GetOptions().map_entry:
            key_fd, value_fd = fd.message_type.fields
            target = getattr(msg, fd.name)
            for salt in (0, 1):
                key = _sample(key_fd, salt)
                if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth < 3:
                        fill(target[key], depth + 1)
                else:
                    target[key] = _sample(value_fd, salt)
        elif fd.is_repeated:
            target = getattr(msg, fd.name)
            for salt in range(3):
                if is_message:
                    if depth < 3:
                        fill(target.add(), depth + 1)
                else:
                    target.append(_sample(fd, salt))
        elif is_message:
            if depth < 3:
                fill(getattr(msg, fd.name), depth + 1)
            else:
                getattr(msg, fd.name).SetInParent()
        else:
            setattr(msg, fd.name, _sample(fd, 0))
    return msg


def _canonical(cls: Any, data: bytes) -> bytes:
    msg = cls.FromString(data)
    msg.DiscardUnknownFields()
    return msg.SerializeToString(deterministic=True)


def _vec(name: str, msg: Any, **spots: Any) -> Vector:
    data = msg.SerializeToString(deterministic=True)
    return Vector(
        name, msg.DESCRIPTOR.full_name, data, data, spots={k: str(v) for k, v in spots.items()}
    )  # noqa: E501


def _raw(name: str, cls: Any, data: bytes, **spots: Any) -> Vector:
    expected = _canonical(cls, data)
    return Vector(
        name, cls.DESCRIPTOR.full_name, data, expected, spots={k: str(v) for k, v in spots.items()}
    )  # noqa: E501


def generic_vectors(classes: dict[str, Any], prefix: str) -> list[Vector]:
    """Empty, filled, and one vector per oneof member, for every message type."""
    out: list[Vector] = []
    for full_name, cls in sorted(classes.items()):
        short = f"{prefix}{full_name.rsplit('.', 1)[-1]}"
        out.append(_vec(f"{short}__empty", cls()))
        out.append(_vec(f"{short}__filled", fill(cls())))
        for oneof in cls.DESCRIPTOR.oneofs:
            if len(oneof.fields) > 1:
                for fd in oneof.fields:
                    msg = fill(cls(), oneof_choice={oneof.name: fd.name})
                    out.append(_vec(f"{short}__{oneof.name}_{fd.name}", msg))
    return out


def _float_bits(value: float) -> str:
    return str(struct.unpack("<q", struct.pack("<d", value))[0])


def contract_vectors() -> list[Vector]:
    from pixelkiln.v1 import generator_pb2 as gen
    from pixelkiln.v1 import image_pb2 as img

    rng = random.Random(7)
    big = rng.randbytes(LARGE)
    request = gen.GenerateRequest(
        model="tiny-random", prompt=UNICODE, negative_prompt="", width=512, height=768,
        steps=4, guidance_scale=0.0, seed=2**64 - 1, num_images=3, strength=0.5,
        init_image=img.Image(data=big, encoding=img.ENCODING_RAW_RGBA8, width=512, height=768),
        mask=img.Image(data=b"", encoding=img.ENCODING_PNG),
        output_encoding=img.ENCODING_WEBP, client_request_id="c-1", priority=gen.PRIORITY_LIVE,
        preview=gen.PreviewSettings(every_n_steps=1, max_side=256, encoding=img.ENCODING_JPEG),
    )  # fmt: skip
    out = [
        _vec(
            "generate_request_full",
            request,
            prompt=UNICODE,
            seed=2**64 - 1,
            has_seed=True,
            has_guidance_scale=True,
            guidance_bits=_float_bits(0.0),
            init_len=LARGE,
            init_last=big[-1],
            priority=gen.PRIORITY_LIVE,
            mask_set=True,
        ),  # fmt: skip
        _vec(
            "generate_request_unset",
            gen.GenerateRequest(prompt="x"),
            prompt="x",
            has_seed=False,
            has_guidance_scale=False,
            init_set=False,
        ),  # fmt: skip
    ]
    result = gen.GenerateEvent(request_id="r-9")
    for i in range(2):
        gi = result.result.images.add(seed=2**63 + i, index=i)
        gi.image.CopyFrom(img.Image(data=rng.randbytes(LARGE // 2), encoding=img.ENCODING_PNG))
    result.result.recipe.request.CopyFrom(gen.GenerateRequest(prompt="recipe", seed=0))
    spots = {"event_case": 6, "images": 2, "image0_len": LARGE // 2, "image1_seed": 2**63 + 1}
    out.append(_vec("generate_event_result", result, recipe_has_seed=True, **spots))
    return out


def stubtest_vectors(t: dict[str, Any]) -> list[Vector]:
    scalars, alltypes = t["stubtest.v1.Scalars"], t["stubtest.v1.AllTypes"]
    nested = alltypes.Nested
    s = scalars
    out = [
        _vec(
            "scalars_max",
            s(
                f_double=1.7976931348623157e308,
                f_float=3.4028234663852886e38,
                f_int64=2**63 - 1,
                f_uint64=2**64 - 1,
                f_int32=2**31 - 1,
                f_fixed64=2**64 - 1,
                f_fixed32=2**32 - 1,
                f_bool=True,
                f_string=UNICODE,
                f_bytes=bytes(range(256)),
                f_uint32=2**32 - 1,
                f_enum=2,
                f_sfixed32=2**31 - 1,
                f_sfixed64=2**63 - 1,
                f_sint32=2**31 - 1,
                f_sint64=2**63 - 1,
            ),
            uint64=2**64 - 1,
            int64=2**63 - 1,
            string=UNICODE,
            enum=2,
        ),  # fmt: skip
        _vec(
            "scalars_min",
            s(
                f_double=-0.0,
                f_float=-0.0,
                f_int64=-(2**63),
                f_uint64=2**63,
                f_int32=-(2**31),
                f_sfixed32=-(2**31),
                f_sfixed64=-(2**63),
                f_sint32=-(2**31),
                f_sint64=-(2**63),
                f_enum=-1,
            ),
            int32=-(2**31),
            int64=-(2**63),
            sint64=-(2**63),
            enum=-1,
        ),  # fmt: skip
        _vec(
            "scalars_minus_one",
            s(
                f_int32=-1,
                f_int64=-1,
                f_sint32=-1,
                f_sint64=-1,
                f_sfixed32=-1,
                f_sfixed64=-1,
                f_double=5e-324,
                f_float=1.401298464324817e-45,
            ),
        ),  # fmt: skip
        _vec("scalars_nan", s(f_double=math.nan, f_float=math.inf)),
        _vec("scalars_inf", s(f_double=-math.inf, f_float=math.nan)),
        _vec("scalars_unknown_enum", s(f_enum=99), enum=99),
        _vec("scalars_large_string", s(f_string="ü" * 300_000, f_bytes=b"\x00" * LARGE)),
    ]
    # Godot's get_string_from_utf8() stops at U+0000 and drops a leading U+FEFF.
    for name, text, godot in (("string_nul", "a\u0000b", "a"), ("string_bom", "\ufeffbom", "bom")):
        vec = _vec(name, s(f_string=text))
        vec.expected_gd = s(f_string=godot).SerializeToString()
        out.append(vec)
    a = alltypes()
    for name in ("opt_int32", "opt_double", "opt_enum", "opt_bool", "opt_float", "opt_sint64"):
        setattr(a, name, 0)
    a.opt_string, a.opt_bytes = "", b""
    a.opt_message.SetInParent()
    out.append(_vec("presence_zero", a, has_opt_int32=True, has_opt_string=True))
    out.append(_vec("presence_unset", alltypes(), has_opt_int32=False, choice=0))
    zero_members = {"o_string": "", "o_int32": 0, "o_enum": 0, "o_bytes": b"", "o_double": 0.0,
                    "o_uint64": 0, "p_bool": False}  # fmt: skip
    for member, value in zero_members.items():
        out.append(_vec(f"oneof_zero_{member}", alltypes(**{member: value})))
    out.append(_vec("oneof_zero_o_message", alltypes(o_message=s()), choice=52))
    both = alltypes(o_uint64=2**64 - 1, p_nested=nested(depth=1))
    out.append(_vec("oneof_two", both, choice=56, other=58))
    rep = alltypes(
        r_int32=[0, -1, 2**31 - 1, -(2**31)], r_uint64=[0, 2**64 - 1], r_sint32=[-(2**31), -1],
        r_sint64=[-(2**63), 2**63 - 1, 0, -1], r_double=[math.nan, math.inf, -0.0],
        r_float=[1.5, -0.0], r_bool=[True, False, True], r_string=["", "ü", "x" * 1000],
        r_bytes=[b"", b"\x00"], r_enum=[0, 1, -1, 99], r_fixed32=[0, 2**32 - 1],
        r_fixed64=[2**64 - 1], r_sfixed32=[-(2**31)], r_sfixed64=[-(2**63)], r_int64=[-(2**63)],
        r_uint32=[2**32 - 1, 0], r_message=[s(), s(f_int32=5)], r_int32_unpacked=[0, -1, 7],
        r_enum_unpacked=[99, -1], r_double_unpacked=[0.5], encodings=[0, 4, 77],
    )  # fmt: skip
    out.append(_vec("repeated_edges", rep, r_int32_count=4, r_enum_last=99))
    out.append(_vec("maps", alltypes(
        m_string_int32={"": 0, "a": -1, "ü": 2**31 - 1},
        m_int64_string={-1: "neg", 0: "", 2**63 - 1: "max"},
        m_uint32_message={0: s(), 7: s(f_string="x")}, m_bool_bytes={True: b"\x01", False: b""},
        m_sint32_enum={-5: -1, 5: 99}, m_fixed64_double={2**64 - 1: -0.0},
        m_string_nested={"deep": nested(depth=3, child=nested(depth=4))},
    ), m_string_int32_count=3, m_string_int32_u=2**31 - 1))  # fmt: skip
    deep = nested(depth=0)
    for depth in range(1, 60):
        deep = nested(depth=depth, child=deep, kind=1)
    out.append(_vec("deep_nesting", alltypes(nested=deep), nested_depth=59))
    full = fill(alltypes())
    full.last, full.kind, full.image.data = "end", 1, b"\x89PNG"
    out.append(_vec("all_types_full", full, last="end", class_=getattr(full, "class")))
    # Raw inputs: expected bytes are Python's canonical re-encoding.
    unpacked = (
        b"".join(_key(25, 0) + _varint(v) for v in (1, -1, 300))
        + b"".join(_key(27, 5) + struct.pack("<I", v) for v in (0, 2**32 - 1))
        + b"".join(_key(21, 1) + struct.pack("<d", v) for v in (0.25, -1.0))
        + b"".join(_key(32, 0) + _varint(v) for v in (1, 99, -1))
        + _len(25, _varint(5) + _varint(6))  # packed and unpacked chunks of one field
    )  # fmt: skip
    out.append(_raw("unpacked_input", alltypes, unpacked, r_int32_count=5))
    packed_for_unpacked = _len(38, _varint(3) + _varint(-2)) + _len(40, struct.pack("<d", 1.0))
    out.append(_raw("packed_input_for_unpacked_field", alltypes, packed_for_unpacked))
    # Entries in the order of Python's deterministic output (upb's: a key that is a prefix of
    # another comes after it), since maps keep their insertion order in our stubs.
    entries = (
        _len(41, _len(1, b"key-only"))  # value missing: 0
        + _len(41, _len(1, b"k") + _key(9, 0) + b"\x01" + _key(2, 0) + _varint(1))  # unknown inside
        + _len(41, _len(1, b"k") + _key(2, 0) + _varint(2))  # duplicate key: last wins
        + _len(41, _key(2, 0) + _varint(9) + _len(1, b"v-first"))  # value before key
        + _len(41, _key(2, 0) + _varint(4))  # key missing: ""
        + _len(43, _key(1, 0) + _varint(3))  # message value missing: an empty message
    )  # fmt: skip
    out.append(_raw("map_entries_odd", alltypes, entries))
    base = full.SerializeToString(deterministic=True)
    inner = _len(1, s(f_int32=3).SerializeToString() + UNKNOWN)
    out.append(_raw("unknown_fields", alltypes, UNKNOWN + base + UNKNOWN + inner + UNKNOWN))
    wrong_wire = _len(5, b"xx") + _key(9, 0) + b"\x01" + _key(13, 5) + b"\x00" * 4
    out.append(_raw("wrong_wire_types", scalars, wrong_wire + _key(5, 0) + b"\x07", int32=7))
    dup = (
        _key(5, 0) + _varint(1) + _key(5, 0) + _varint(2)  # scalar twice: last wins
        + _len(9, b"first") + _len(9, b"second")
    )  # fmt: skip
    out.append(_raw("duplicate_scalars", scalars, dup, int32=2, string="second"))
    merged = (
        _len(1, s(f_int32=1, f_string="a").SerializeToString())
        + _len(1, s(f_int64=2, f_string="b").SerializeToString())  # message twice: merged
        + _len(52, s(f_int32=4).SerializeToString()) + _len(52, s(f_uint32=5).SerializeToString())
        + _len(50, b"then") + _key(51, 0) + _varint(8)  # oneof: the last member wins
    )  # fmt: skip
    out.append(_raw("duplicate_messages", alltypes, merged, choice=51))
    overlong = _key(5, 0) + b"\x81\x80\x80\x00" + _key(3, 0) + b"\xff\xff\xff\xff\x0f"
    out.append(_raw("overlong_varints", scalars, overlong, int32=1))
    short_negative = _key(5, 0) + b"\xff\xff\xff\xff\x0f"  # int32 -1 in five bytes
    out.append(_raw("int32_five_byte_negative", scalars, short_negative, int32=-1))
    for name, data in {
        "bad_truncated_varint": _key(5, 0) + b"\xff",
        "bad_length_past_end": _key(9, 2) + b"\x05ab",
        "bad_wire_type_7": _key(5, 7) + b"\x00",
        "bad_field_zero": b"\x00\x01",
        "bad_eleven_byte_varint": _key(5, 0) + b"\xff" * 10 + b"\x01",
        "bad_unterminated_group": _key(1004, 3) + _key(1, 0) + b"\x01",
    }.items():
        out.append(Vector(name, "stubtest.v1.Scalars", data, error=True))
    return out


def build_vectors() -> list[Vector]:
    t = stubtest_classes()
    vectors = contract_vectors() + stubtest_vectors(t)
    vectors += generic_vectors(contract_classes(), "v1_")
    own = {k: v for k, v in t.items() if k.startswith("stubtest.") and not _is_entry(v)}
    vectors += generic_vectors(own, "t_")
    names = [v.name for v in vectors]
    assert len(names) == len(set(names)), "duplicate vector names"
    return vectors


def _is_entry(cls: Any) -> bool:
    return cls.DESCRIPTOR.GetOptions().map_entry


def write_vectors(out_dir: Path, vectors: list[Vector]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for v in vectors:
        (out_dir / f"{v.name}.bin").write_bytes(v.data)
        rows.append(f"{v.name}\t{v.type_name}\t{'error' if v.error else 'ok'}\n")
    (out_dir / "manifest.tsv").write_text("".join(rows), encoding="utf-8")


def render_test_stubs(out_dir: Path) -> dict[str, Path]:
    """C# and GDScript stubs of the contract plus the test-only proto (never committed)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import gen_stubs

    files = gen_stubs.proto_files() + [TEST_PROTO]
    roots = [gen_stubs.PROTO_ROOT, TEST_PROTO_ROOT]
    rendered = gen_stubs.render(roots, files, gen_stubs.header_for("tests/protos"))
    dirs = {"csharp": out_dir / "csharp", "gdscript": out_dir / "gdscript"}
    gen_stubs.write(rendered, dirs)
    return dirs


def godot_layout(out_dir: Path, test_gdscript: Path) -> Path:
    """The committed generated scripts plus the test stubs in out_dir/generated, the codec in
    out_dir/runtime (where the generated scripts preload it from); returns out_dir/generated."""
    gdscript = ROOT / "clients" / "gdscript"
    (out_dir / "generated").mkdir(parents=True, exist_ok=True)
    (out_dir / "runtime").mkdir(exist_ok=True)
    for path in (gdscript / "generated").glob("*.gd"):
        shutil.copy(path, out_dir / "generated")
    shutil.copy(test_gdscript / "stubtest_v1.gd", out_dir / "generated")
    shutil.copy(gdscript / "runtime" / "proto_codec.gd", out_dir / "runtime")
    return out_dir / "generated"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="pk-"))
    write_vectors(target / "vectors", build_vectors())
    stubs = render_test_stubs(target / "stubs")
    generated = godot_layout(target / "godot", stubs["gdscript"])
    print(f"vectors:   {target / 'vectors'}\ngenerated: {generated}\nstubs:     {target / 'stubs'}")
