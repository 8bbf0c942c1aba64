extends SceneTree
## Runs the shared wire vectors through the generated GDScript messages (Godot 4).
##
## With Godot 4:
##   godot --headless --script tests/stubs/gdscript/vector_check.gd -- VECTORS GENERATED
## where VECTORS comes from tests/stubs/make_vectors.py and GENERATED holds the generated
## scripts next to ../runtime/proto_codec.gd. Without Godot 4 (as here), test_stubs.py calls
## run() on tests/stubs/gdscript_vm.py. For every vector this writes NAME.gd.out (decoded and
## re-encoded) and NAME.gd.spots (a few decoded values), as VectorCheck.cs does for C#.


func _init() -> void:
	var args := OS.get_cmdline_user_args()
	quit(1 if run(args[0], args[1]) > 0 else 0)


## Returns the number of failures (each also reported with push_error).
static func run(vector_dir: String, generated_dir: String) -> int:
	var classes := {}
	for file in DirAccess.get_files_at(generated_dir):
		if file.ends_with(".gd"):
			_collect(load(generated_dir.path_join(file)), classes)
	var failures := self_test(classes)
	var manifest := FileAccess.get_file_as_string(vector_dir.path_join("manifest.tsv"))
	for row in manifest.split("\n"):
		if row.is_empty():
			continue
		var cols: PackedStringArray = row.split("\t")
		var data := FileAccess.get_file_as_bytes(vector_dir.path_join(cols[0] + ".bin"))
		var message: Variant = classes[cols[1]].from_bytes(data)
		if cols[2] == "error":
			if message != null:
				push_error(cols[0] + ": malformed input was accepted")
				failures += 1
			continue
		if message == null:
			push_error(cols[0] + ": decoding failed")
			failures += 1
			continue
		_write(vector_dir.path_join(cols[0] + ".gd.out"), message.to_bytes())
		_write(vector_dir.path_join(cols[0] + ".gd.spots"), spots(message).to_utf8_buffer())
	return failures


static func _collect(script, classes: Dictionary) -> void:
	var constants: Dictionary = script.get_script_constant_map()
	for key in constants:
		var value = constants[key]
		if value is GDScript:
			var inner: Dictionary = value.get_script_constant_map()
			if inner.has("PROTO_NAME"):
				classes[inner["PROTO_NAME"]] = value
				_collect(value, classes)


static func _write(path: String, data: PackedByteArray) -> void:
	var file := FileAccess.open(path, FileAccess.WRITE)
	file.store_buffer(data)
	file.close()


static func _line(key: String, value) -> String:
	if value is bool:
		return key + "=" + ("True" if value else "False") + "\n"
	return key + "=" + str(value) + "\n"


static func _double_bits(value: float) -> int:
	var bits := PackedByteArray()
	bits.resize(8)
	bits.encode_double(0, value)
	return bits.decode_s64(0)


## The values VectorCheck.cs prints, under the same keys.
static func spots(m) -> String:
	var out := ""
	match m.PROTO_NAME:
		"stubtest.v1.Scalars":
			out += _line("int32", m.f_int32) + _line("int64", m.f_int64)
			out += _line("uint64", String.num_uint64(m.f_uint64)) + _line("sint64", m.f_sint64)
			out += _line("string", m.f_string) + _line("enum", m.f_enum)
		"stubtest.v1.AllTypes":
			out += _line("has_opt_int32", m.has_opt_int32())
			out += _line("has_opt_string", m.has_opt_string())
			out += _line("choice", m.get_choice_case()) + _line("other", m.get_other_case())
			out += _line("r_int32_count", m.r_int32.size())
			if not m.r_enum.is_empty():
				out += _line("r_enum_last", m.r_enum[m.r_enum.size() - 1])
			out += _line("m_string_int32_count", m.m_string_int32.size())
			if m.m_string_int32.has("ü"):
				out += _line("m_string_int32_u", m.m_string_int32["ü"])
			var depth := 0
			var node = m.nested
			while node != null and node.child != null:
				depth += 1
				node = node.child
			out += _line("nested_depth", depth) + _line("last", m.last)
			out += _line("class_", m.class_pb)
		"pixelkiln.v1.GenerateRequest":
			out += _line("prompt", m.prompt) + _line("seed", String.num_uint64(m.seed))
			out += _line("has_seed", m.has_seed())
			out += _line("has_guidance_scale", m.has_guidance_scale())
			out += _line("guidance_bits", _double_bits(m.guidance_scale))
			out += _line("init_set", m.init_image != null)
			if m.init_image != null:
				out += _line("init_len", m.init_image.data.size())
				out += _line("init_last", m.init_image.data[m.init_image.data.size() - 1])
			out += _line("priority", m.priority) + _line("mask_set", m.mask != null)
		"pixelkiln.v1.GenerateEvent":
			out += _line("event_case", m.get_event_case())
			if m.result != null:
				out += _line("images", m.result.images.size())
				out += _line("image0_len", m.result.images[0].image.data.size())
				out += _line("image1_seed", String.num_uint64(m.result.images[1].seed))
				out += _line("recipe_has_seed", m.result.recipe.request.has_seed())
	return out


static func _check(ok: bool, what: String) -> int:
	if ok:
		return 0
	push_error("self test failed: " + what)
	return 1


## API semantics that byte vectors cannot show: oneof cases, presence, malformed input.
static func self_test(classes: Dictionary) -> int:
	var failures := 0
	var ev = classes["pixelkiln.v1.GenerateEvent"].new()
	failures += _check(ev.get_event_case() == 0, "oneof starts unset")
	ev.accepted = classes["pixelkiln.v1.Accepted"].new()
	ev.queued = classes["pixelkiln.v1.Queued"].new()
	failures += _check(ev.get_event_case() == 3 and ev.accepted == null, "a member clears others")
	ev.queued = null
	failures += _check(ev.get_event_case() == 0, "null clears the case")
	var req = classes["pixelkiln.v1.GenerateRequest"].new()
	failures += _check(not req.has_seed() and req.to_bytes().is_empty(), "optional starts unset")
	req.seed = 0
	failures += _check(req.has_seed() and req.to_bytes().size() == 2, "optional zero is written")
	req.clear_seed()
	failures += _check(not req.has_seed() and req.to_bytes().is_empty(), "clear_seed")
	var all_types = classes["stubtest.v1.AllTypes"]
	var a = all_types.new()
	a.o_string = "x"
	a.p_bool = false
	failures += _check(a.get_choice_case() == 50 and a.get_other_case() == 57, "two oneofs")
	a.o_int32 = 0
	failures += _check(a.o_string == "" and a.get_choice_case() == 51, "scalar members switch")
	a.scalars = classes["stubtest.v1.Scalars"].new()
	a.scalars.f_enum = 99
	a.scalars.f_uint64 = -1
	a.r_enum.append(-1)
	a.m_string_int32["k"] = 1
	var copy = all_types.from_bytes(a.to_bytes())
	failures += _check(copy.scalars.f_enum == 99 and copy.r_enum[0] == -1, "enum values survive")
	failures += _check(copy.scalars.f_uint64 == -1, "uint64 max round-trips as -1")
	failures += _check(copy.get_choice_case() == 51 and copy.m_string_int32["k"] == 1, "copy")
	var bad := PackedByteArray([8, 255])
	failures += _check(all_types.from_bytes(bad) == null, "truncated input gives null")
	return failures
