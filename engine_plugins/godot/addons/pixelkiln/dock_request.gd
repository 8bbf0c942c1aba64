@tool
extends RefCounted
## The dock's checks of what it sends and where it saves, as plain functions (no editor classes,
## so the real Godot of tests/clients_gd runs them): the seed as the contract's uint64, and the
## "Save to" folder, which must be inside the project.

const AssetWriter = preload("asset_writer.gd")
const PK = preload("generated/pixelkiln_v1.gd")
const MAPS := {
	"normal": PK.MapKind.MAP_KIND_NORMAL,
	"height": PK.MapKind.MAP_KIND_HEIGHT,
	"roughness": PK.MapKind.MAP_KIND_ROUGHNESS,
	"ao": PK.MapKind.MAP_KIND_AO,
}
const MAX_SEED := "18446744073709551615"  # 2^64 - 1


## {"seed": int, "error": String} for the seed field's [param text]: decimal digits up to
## 2^64 - 1 ("" is 0). Seeds of 2^63 and more come back as negative ints holding the same 64
## bits, which is how the client sends a uint64; nothing is clamped: a larger number is refused.
static func parse_seed(text: String) -> Dictionary:
	var digits := text.strip_edges()
	if digits.is_empty():
		return {"seed": 0, "error": ""}
	var bytes := PackedByteArray()
	bytes.resize(8)
	bytes.fill(0)
	for c in digits:
		if c < "0" or c > "9":
			var why := "Seed: '" + digits + "' is not a whole number from 0 to " + MAX_SEED
			return {"seed": 0, "error": why}
		var carry := int(c)
		for i in 8:  # bytes = bytes * 10 + digit, little-endian
			var value := bytes[i] * 10 + carry
			bytes[i] = value & 0xFF
			carry = value >> 8
		if carry != 0:
			var why := "Seed: " + digits + " is larger than " + MAX_SEED + " (2^64 - 1)"
			return {"seed": 0, "error": why}
	return {"seed": bytes.decode_s64(0), "error": ""}


## {"folder": String, "error": String} for the "Save to" field's [param text]: empty is
## [constant AssetWriter.DEFAULT_FOLDER]; anything else must be a folder under res:// without
## ".." (the results are project assets, and the editor imports only files under res://).
static func save_folder(text: String) -> Dictionary:
	var path := text.strip_edges().replace("\\", "/")
	if path.is_empty():
		return {"folder": AssetWriter.DEFAULT_FOLDER, "error": ""}
	if not path.begins_with("res://"):
		return {
			"folder": "",
			"error": (
				"Save to: '" + path + "' is not inside the project; use a folder under res://"
				+ " (empty: " + AssetWriter.DEFAULT_FOLDER + ")"
			),
		}
	var parts := PackedStringArray()
	for part in path.substr(6).split("/", false):
		if part == "..":
			return {"folder": "", "error": "Save to: '" + path + "' leaves the project (..)"}
		if part != ".":
			parts.append(part)
	return {"folder": "res://" + "/".join(parts), "error": ""}


## The request of the dock's [param form] (DockSettings.values_of() of its controls) with
## [param seed_value] (null: the daemon picks one), previews at every step.
static func request_from(form: Dictionary, seed_value: Variant) -> PK.GenerateRequestMsg:
	var request := PK.GenerateRequestMsg.new()
	request.prompt = str(form["prompt"]).strip_edges()
	request.negative_prompt = str(form["negative_prompt"]).strip_edges()
	request.width = int(form["width"])
	request.height = int(form["height"])
	request.steps = int(form["steps"])
	if seed_value != null:
		request.seed = seed_value
	request.tiling = form["tiling"]
	if form["transparent"]:
		request.background = PK.Background.BACKGROUND_TRANSPARENT
		request.sprite = PK.SpriteSettingsMsg.new()
		request.sprite.trim = form["trim"]
	for map_name in MAPS:
		if form["map_" + map_name]:
			request.maps.append(MAPS[map_name])
	request.num_images = int(form["count"])
	request.atlas = form["atlas"] and request.num_images > 1
	request.preview = PK.PreviewSettingsMsg.new()
	request.preview.every_n_steps = 1
	return request
