@tool
extends RefCounted
## Saves PixelKiln results as project assets, with import settings that fit each one.
##
## No half-written asset ever appears under res://: each file is written to a hidden temp file
## beside it ([code].NAME.tmp[/code]: skipped by the editor's scan, and on the same volume, so
## the rename is atomic), then renamed into place. The [code].import[/code] file goes first, so
## the editor's first import of the image already uses its settings (the editor keeps the
## [code][params][/code] of an existing .import file). Names never overwrite an existing asset:
## the name is chosen so that none of the files a result writes exists yet (every image, map and
## atlas file, and their .import files), and [method write_atomic] refuses to rename over a file
## that appeared in the meantime.
## Afterwards, tell the editor about the saved paths: [method EditorFileSystem.update_file] for
## each and [method EditorFileSystem.reimport_files] for the images (the dock does; cheaper than
## a scan of the whole project).

const PK = preload("generated/pixelkiln_v1.gd")
const DEFAULT_FOLDER := "res://pixelkiln"
const MAX_SLUG := 40
const MAP_SUFFIX := {
	PK.MapKind.MAP_KIND_NORMAL: "normal",
	PK.MapKind.MAP_KIND_HEIGHT: "height",
	PK.MapKind.MAP_KIND_ROUGHNESS: "roughness",
	PK.MapKind.MAP_KIND_AO: "ao",
}
## ResourceImporterTexture's compress/mode values.
const COMPRESS_LOSSLESS := 0
const COMPRESS_VRAM := 2


## Writes every image of [param result] (maps and atlas included) under [param folder];
## returns {"paths": saved res:// paths, "errors": what failed}.
static func save_result(
	result: PK.ResultMsg, request: PK.GenerateRequestMsg, folder := DEFAULT_FOLDER
) -> Dictionary:
	var saved: Array[String] = []
	var errors: Array[String] = []
	var err := DirAccess.make_dir_recursive_absolute(folder)
	if err != OK or result.images.is_empty():
		errors.append(folder + ": " + (error_string(err) if err != OK else "no images"))
		return {"paths": saved, "errors": errors}
	var tiled := request.tiling != PK.Tiling.TILING_NONE
	var sprite := request.background == PK.Background.BACKGROUND_TRANSPARENT
	var for_3d := tiled or not request.maps.is_empty()
	var first_seed := String.num_uint64(result.images[0].seed)
	var base := unique_base(folder, slug(request.prompt) + "_" + first_seed, suffixes(result))
	var kind := "sprite" if sprite else ("texture" if tiled else "image")
	for generated in result.images:
		var name := base + _image_suffix(result, generated)
		_save_image(folder, name, generated.image, import_settings(kind, for_3d), saved, errors)
		for derived in generated.maps:
			var map_kind := "normal" if derived.kind == PK.MapKind.MAP_KIND_NORMAL else "map"
			var params := import_settings(map_kind, true)
			_save_image(folder, name + _map_suffix(derived), derived.image, params, saved, errors)
	if result.atlas != null:
		var atlas_params := import_settings("sprite" if sprite else "image", false)
		_save_image(folder, base + "_atlas", result.atlas.image, atlas_params, saved, errors)
		var json_path := folder.path_join(base + "_atlas.json")
		err = write_atomic(json_path, result.atlas.frames_json.to_utf8_buffer())
		if err == OK:
			saved.append(json_path)
		else:
			errors.append(json_path + ": " + error_string(err))
	return {"paths": saved, "errors": errors}


## ResourceImporterTexture parameters for one kind of asset:
## [code]"texture"[/code] (tiling albedo), [code]"normal"[/code], [code]"map"[/code] (height,
## roughness, AO), [code]"sprite"[/code] (transparent), [code]"image"[/code] (anything else).
## [param for_3d]: used on 3D surfaces (VRAM compression and mipmaps). Repeat is not an import
## setting in Godot 4: it is the material's or CanvasItem's texture_repeat.
static func import_settings(kind: String, for_3d: bool) -> Dictionary:
	if kind == "sprite":
		return {
			"compress/mode": COMPRESS_LOSSLESS,
			"mipmaps/generate": false,
			"process/fix_alpha_border": true,
			"process/premult_alpha": false,
			"detect_3d/compress_to": 0,
		}
	var params := {
		"compress/mode": COMPRESS_VRAM if for_3d else COMPRESS_LOSSLESS,
		"mipmaps/generate": for_3d,
	}
	if kind == "normal":
		params["compress/normal_map"] = 1  # Enable: RGTC compression, normal-map sampling
	if kind == "image":
		params["detect_3d/compress_to"] = 1  # VRAM compressed once used in 3D (the default)
	return params


## A minimal .import file: the importer and its parameters; Godot fills in the rest.
static func import_file_text(params: Dictionary) -> String:
	var text := '[remap]\n\nimporter="texture"\ntype="CompressedTexture2D"\n\n[params]\n\n'
	for key in params:
		text += key + "=" + var_to_str(params[key]) + "\n"
	return text


## "Mossy cobblestone, wet!" -> "mossy_cobblestone_wet" (a-z, 0-9 and _, at most MAX_SLUG).
static func slug(prompt: String) -> String:
	var out := ""
	var gap := false
	for c in prompt.to_lower():
		if (c >= "a" and c <= "z") or (c >= "0" and c <= "9"):
			if gap and not out.is_empty():
				out += "_"
			out += c
			gap = false
		else:
			gap = true
		if out.length() >= MAX_SLUG:
			break
	return out if not out.is_empty() else "image"


## [param base], or base_2, base_3, ... : the first for which no file that the result writes
## (base + each of [param name_suffixes], see [method suffixes]) exists in the folder.
static func unique_base(folder: String, base: String, name_suffixes := [""]) -> String:
	var candidate := base
	var n := 1
	while _taken(folder, candidate, name_suffixes):
		n += 1
		candidate = base + "_" + str(n)
	return candidate


## The endings that [method save_result] adds to the base name for [param result]: "" (the base
## itself, also kept free for a batch), "_0", "_0_normal", ..., "_atlas".
static func suffixes(result: PK.ResultMsg) -> Array[String]:
	var out: Array[String] = [""]
	for generated in result.images:
		var name := _image_suffix(result, generated)
		if not name.is_empty():
			out.append(name)
		for derived in generated.maps:
			out.append(name + _map_suffix(derived))
	out.append("_atlas")
	return out


## Writes [param data] to a hidden temp file beside [param path], then renames it into place.
## An existing file at [param path] is kept (ERR_ALREADY_EXISTS) unless [param replace].
static func write_atomic(path: String, data: PackedByteArray, replace := false) -> Error:
	if not replace and FileAccess.file_exists(path):
		return ERR_ALREADY_EXISTS
	var temp := path.get_base_dir().path_join("." + path.get_file() + ".tmp")
	var file := FileAccess.open(temp, FileAccess.WRITE)
	if file == null:
		return FileAccess.get_open_error()
	file.store_buffer(data)
	var err := file.get_error()
	file.close()
	if not replace and FileAccess.file_exists(path):  # appeared while the temp file was written
		err = ERR_ALREADY_EXISTS
	if err != OK:
		DirAccess.remove_absolute(temp)
		return err
	return DirAccess.rename_absolute(temp, path)


static func _taken(folder: String, base: String, name_suffixes: Array) -> bool:
	for suffix in name_suffixes:
		var stem := folder.path_join(base + str(suffix))
		if FileAccess.file_exists(stem + ".json"):
			return true
		for ext in ["png", "jpg", "webp"]:
			var path: String = stem + "." + ext
			if FileAccess.file_exists(path) or FileAccess.file_exists(path + ".import"):
				return true
	return false


static func _image_suffix(result: PK.ResultMsg, generated: PK.GeneratedImageMsg) -> String:
	return "" if result.images.size() == 1 else "_" + str(generated.index)


static func _map_suffix(derived: PK.DerivedMapMsg) -> String:
	return "_" + str(MAP_SUFFIX.get(derived.kind, "map"))


static func _save_image(
	folder: String,
	name: String,
	image: PK.ImageMsg,
	params: Dictionary,
	saved: Array[String],
	errors: Array[String]
) -> void:
	var ext := "png"
	var data := image.data
	if image.encoding == PK.Encoding.ENCODING_JPEG:
		ext = "jpg"
	elif image.encoding == PK.Encoding.ENCODING_WEBP:
		ext = "webp"
	elif image.encoding == PK.Encoding.ENCODING_RAW_RGBA8:
		var raw := Image.create_from_data(
			image.width, image.height, false, Image.FORMAT_RGBA8, image.data
		)
		data = raw.save_png_to_buffer()
	var path := folder.path_join(name + "." + ext)
	var err := OK
	if FileAccess.file_exists(path) or FileAccess.file_exists(path + ".import"):
		err = ERR_ALREADY_EXISTS  # never half of a pair: neither file is written
	if err == OK:
		err = write_atomic(path + ".import", import_file_text(params).to_utf8_buffer())
	if err == OK:
		err = write_atomic(path, data)
	if err == OK:
		saved.append(path)
	else:
		errors.append(path + ": " + error_string(err))
