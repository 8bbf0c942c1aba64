# gdlint: disable=max-public-methods
extends RefCounted
## Hand-written proto3 wire codec for the generated PixelKiln messages (Godot 4, no plugins).
##
## The generated scripts preload this file ("../runtime/proto_codec.gd") as [code]Codec[/code]
## and call [code]msg.to_bytes()[/code] / [code]Msg.from_bytes(bytes)[/code]; use it directly
## only to write a new kind of frame.
##
## Integers: GDScript's int is a signed 64-bit value, so every proto integer type fits, and
## uint64 / fixed64 values >= 2^63 arrive as negative ints holding the same 64 bits (for
## example 2^64 - 1 reads as -1). They are written back bit-exactly, so a seed round-trips;
## print or compare such values as unsigned with [code]String.num_uint64()[/code]. uint32 and
## fixed32 values are always 0..2^32-1; int32 values are truncated to 32 bits when written.
##
## Godot's shift operators refuse negative operands in debug builds, so nothing here shifts a
## negative number: negative varints and zigzag values are built from their non-negative
## parts.
##
## float fields travel as 32-bit IEEE values (a GDScript float is 64-bit: a value that float32
## cannot hold is rounded when written); double fields are exact. Strings are UTF-8.

const MASK63: int = 0x7FFFFFFFFFFFFFFF
const INT64_MIN: int = -0x7FFFFFFFFFFFFFFF - 1
const MAX_DEPTH: int = 100


## True only for +0.0: proto3 skips a float field whose bits are all zero, so -0.0 and NaN are
## written like any other value.
static func float_is_zero(value: float) -> bool:
	if value != 0.0:
		return false
	var bits := PackedByteArray()
	bits.resize(8)
	bits.encode_double(0, value)
	return bits.decode_s64(0) == 0


## Appends protobuf wire format to [member buf].
class Writer:
	extends RefCounted

	var buf := PackedByteArray()

	## A varint of the 64 bits of [param value] (negative values take ten bytes).
	func write_varint(value: int) -> void:
		if value < 0:
			var low := value & MASK63
			for _i in 9:
				buf.append((low & 0x7F) | 0x80)
				low = low >> 7
			buf.append(1)
			return
		while value >= 0x80:
			buf.append((value & 0x7F) | 0x80)
			value = value >> 7
		buf.append(value)

	func write_int32(value: int) -> void:
		value = value & 0xFFFFFFFF
		if value >= 0x80000000:
			value -= 0x100000000
		write_varint(value)

	func write_int64(value: int) -> void:
		write_varint(value)

	func write_uint32(value: int) -> void:
		write_varint(value & 0xFFFFFFFF)

	func write_uint64(value: int) -> void:
		write_varint(value)

	func write_sint32(value: int) -> void:
		value = value & 0xFFFFFFFF
		if value >= 0x80000000:
			value -= 0x100000000
		write_sint64(value)

	func write_sint64(value: int) -> void:
		if value >= 0:
			write_varint(value << 1)
		else:
			write_varint(((~value) << 1) | 1)

	func write_bool(value: bool) -> void:
		buf.append(1 if value else 0)

	func write_enum(value: int) -> void:
		write_int32(value)

	func write_fixed32(value: int) -> void:
		var at := buf.size()
		buf.resize(at + 4)
		buf.encode_u32(at, value & 0xFFFFFFFF)

	func write_sfixed32(value: int) -> void:
		write_fixed32(value)

	func write_fixed64(value: int) -> void:
		var at := buf.size()
		buf.resize(at + 8)
		buf.encode_s64(at, value)

	func write_sfixed64(value: int) -> void:
		write_fixed64(value)

	func write_float(value: float) -> void:
		var at := buf.size()
		buf.resize(at + 4)
		buf.encode_float(at, value)

	func write_double(value: float) -> void:
		var at := buf.size()
		buf.resize(at + 8)
		buf.encode_double(at, value)

	func write_bytes(value: PackedByteArray) -> void:
		write_varint(value.size())
		buf.append_array(value)

	func write_string(value: String) -> void:
		write_bytes(value.to_utf8_buffer())

	## An embedded message with its length prefix; null is written as an empty message.
	func write_message(message) -> void:
		var sub := Writer.new()
		if message != null:
			message.write_to(sub)
		write_bytes(sub.buf)


## Reads protobuf wire format from [member buf]. Malformed input sets [member failed] and
## moves [member pos] to the end, which ends every read loop; decoders then return null.
class Reader:
	extends RefCounted

	var buf: PackedByteArray
	var pos: int = 0
	var failed: bool = false
	var depth: int = 0

	func _init(data: PackedByteArray) -> void:
		buf = data

	func fail() -> void:
		failed = true
		pos = buf.size()

	func read_varint() -> int:
		var result := 0
		var shift := 0
		while shift < 63:
			if pos >= buf.size():
				fail()
				return 0
			var byte: int = buf[pos]
			pos += 1
			result |= (byte & 0x7F) << shift
			if byte < 0x80:
				return result
			shift += 7
		# The tenth byte carries bit 63 only; a continuation bit there is malformed.
		if pos >= buf.size() or buf[pos] >= 0x80:
			fail()
			return 0
		var last: int = buf[pos]
		pos += 1
		if (last & 1) == 1:
			result |= INT64_MIN
		return result

	## The next tag ((field number << 3) | wire type); fails on field number 0.
	func read_tag() -> int:
		var tag := read_varint()
		if tag < 8 or tag > 0xFFFFFFFF:
			fail()
			return 0
		return tag

	## Reads a length prefix and returns where that payload ends.
	func read_length_end() -> int:
		var length := read_varint()
		if length < 0 or length > buf.size() - pos:
			fail()
		return pos + length if not failed else pos

	func read_int32() -> int:
		var value := read_varint() & 0xFFFFFFFF
		return value - 0x100000000 if value >= 0x80000000 else value

	func read_int64() -> int:
		return read_varint()

	func read_uint32() -> int:
		return read_varint() & 0xFFFFFFFF

	func read_uint64() -> int:
		return read_varint()

	func read_sint32() -> int:
		var zigzag := read_varint() & 0xFFFFFFFF
		var half := zigzag >> 1
		return ~half if (zigzag & 1) == 1 else half

	func read_sint64() -> int:
		var zigzag := read_varint()
		var half := 0
		if zigzag >= 0:
			half = zigzag >> 1
		else:
			half = ((zigzag & MASK63) >> 1) | 0x4000000000000000
		return ~half if (zigzag & 1) == 1 else half

	func read_bool() -> bool:
		return read_varint() != 0

	func read_enum() -> int:
		return read_int32()

	func _take(count: int) -> int:
		if count > buf.size() - pos:
			fail()
			return -1
		pos += count
		return pos - count

	func read_fixed32() -> int:
		var at := _take(4)
		return buf.decode_u32(at) if at >= 0 else 0

	func read_sfixed32() -> int:
		var at := _take(4)
		return buf.decode_s32(at) if at >= 0 else 0

	func read_fixed64() -> int:
		var at := _take(8)
		return buf.decode_s64(at) if at >= 0 else 0

	func read_sfixed64() -> int:
		return read_fixed64()

	func read_float() -> float:
		var at := _take(4)
		return buf.decode_float(at) if at >= 0 else 0.0

	func read_double() -> float:
		var at := _take(8)
		return buf.decode_double(at) if at >= 0 else 0.0

	func read_bytes() -> PackedByteArray:
		var end := read_length_end()
		var start := pos
		pos = end
		return buf.slice(start, end)

	func read_string() -> String:
		return read_bytes().get_string_from_utf8()

	## Reads an embedded message (length prefix, then fields) into [param message].
	func read_message(message) -> void:
		var end := read_length_end()
		depth += 1
		if depth > MAX_DEPTH:
			fail()
			return
		message.merge_from(self, end)
		depth -= 1

	## Skips the value of a field the message does not know (any wire type, groups too).
	func skip_field(tag: int) -> void:
		match tag & 7:
			0:
				read_varint()
			1:
				_take(8)
			2:
				pos = read_length_end()
			3:
				_skip_group(tag >> 3)
			5:
				_take(4)
			_:
				fail()

	func _skip_group(field_number: int) -> void:
		depth += 1
		if depth > MAX_DEPTH:
			fail()
			return
		while not failed:
			if pos >= buf.size():
				fail()
				return
			var tag := read_tag()
			if (tag & 7) == 4:
				if (tag >> 3) != field_number:
					fail()
				break
			skip_field(tag)
		depth -= 1
