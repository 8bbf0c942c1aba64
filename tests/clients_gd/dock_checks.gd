extends RefCounted
## Checks of the dock and the asset writer that need the real engine (web_main.gd runs them with
## "dock" in res://run.json): the dock itself, built in a release build with a stand-in editor,
## moved to another parent during a generation; its refusals of a seed or folder it cannot use;
## names that never overwrite an asset; and the client's refusal of a frame over its buffer.

const Client = preload("res://addons/pixelkiln/client/pixelkiln_client.gd")
const PK = preload("res://addons/pixelkiln/generated/pixelkiln_v1.gd")
const AssetWriter = preload("res://addons/pixelkiln/asset_writer.gd")
const DockSettings = preload("res://addons/pixelkiln/dock_settings.gd")
const Checks = preload("res://addons/pixelkiln/dock_request.gd")
const Dock = preload("res://addons/pixelkiln/dock.gd")
const MAX_SEED := "18446744073709551615"
const LOOP_DEADLINE_MS := 30000


## Every check; [param host] is a node in the tree, [param url] the daemon's WebSocket URL.
func run(host: Node, url: String, settings: RefCounted) -> Dictionary:
	var out := {"names": _no_overwrite(), "frame": _frame_too_big()}
	out["checks"] = {
		"empty": Checks.save_folder("  "),
		"nested": Checks.save_folder("res://art\\stone/./moss/"),
		"up": Checks.save_folder("res://a/../../outside"),
		"absolute": Checks.save_folder("/tmp/outside"),
		"user": Checks.save_folder("user://x"),
		"seed_max": Checks.parse_seed(" " + MAX_SEED + " "),
		"seed_31": Checks.parse_seed("2147483648"),
		"seed_over": Checks.parse_seed("18446744073709551616"),
		"seed_text": Checks.parse_seed("12e3"),
	}
	out["dock"] = await _dock_moved_during_a_job(host, url, settings)
	return out


## "x 7" seed 1 with a normal map, then "x" seed 7, two images with normal maps: the second
## must not take x_7_1.png (the first's). And write_atomic keeps a file it did not mean to replace.
static func _no_overwrite() -> Dictionary:
	var folder := "user://overwrite_" + str(Time.get_ticks_usec())
	var one := _result([1], [10])
	var request := _request("x 7", 1)
	var first := AssetWriter.save_result(one, request, folder)
	var batch := _result([7, 8], [20, 21])
	var second := AssetWriter.save_result(batch, _request("x", 2), folder)
	var kept := FileAccess.get_file_as_bytes(folder.path_join("x_7_1.png"))
	var guarded := folder.path_join("x_7_1_normal.png")
	var refused := AssetWriter.write_atomic(guarded, PackedByteArray([1, 2, 3]))
	var replaced := AssetWriter.write_atomic(folder.path_join("extra.json"), "{}".to_utf8_buffer())
	var again := AssetWriter.write_atomic(
		folder.path_join("extra.json"), "[]".to_utf8_buffer(), true
	)
	return {
		"first": first["paths"],
		"second": second["paths"],
		"errors": first["errors"] + second["errors"],
		"kept": kept == one.images[0].image.data,
		"refused": refused,
		"normal_kept": FileAccess.get_file_as_bytes(guarded) == one.images[0].maps[0].image.data,
		"written": [replaced, again, FileAccess.get_file_as_string(folder.path_join("extra.json"))],
		"files": Array(DirAccess.get_files_at(folder)),
	}


## A generate request with a frame larger than the client's buffer: refused before sending.
static func _frame_too_big() -> Dictionary:
	var client := Client.new(false)
	client.buffer_bytes = 1000
	var request := PK.GenerateRequestMsg.new()
	request.prompt = "x".repeat(2000)
	var job := client.generate(request)
	client.poll()
	return {"code": job.error_code_name, "message": job.error_message, "done": job.done}


## The dock on a stand-in editor: refusals first, then a generation with the largest seed,
## during which the dock leaves the tree and comes back under another parent (what moving or
## floating it in the editor does). Then it is freed: only that disconnects.
func _dock_moved_during_a_job(host: Node, url: String, settings: RefCounted) -> Dictionary:
	var tree := host.get_tree()
	var editor := FakeEditor.new(settings)
	DockSettings.save_daemon(settings, url, true)
	var first_parent := Node.new()
	var second_parent := Node.new()
	host.add_child(first_parent)
	host.add_child(second_parent)
	var dock: Node = Dock.new()
	dock.editor = editor
	first_parent.add_child(dock)
	var client: Client = dock._client
	var deadline := Time.get_ticks_msec() + LOOP_DEADLINE_MS
	while not client.is_daemon_connected() and Time.get_ticks_msec() < deadline:
		await tree.process_frame
	var out := {"connected": client.is_daemon_connected()}
	dock._prompt.text = "Moved dock"
	dock._width.value = 64
	dock._height.value = 64
	dock._steps.value = 6
	dock._random_seed.button_pressed = false
	out["refused"] = {}
	for case in [["seed", "18446744073709551616", "res://pk"], ["folder", "1", "/tmp/outside"]]:
		dock._seed.text = case[1]
		dock._folder.text = case[2]
		dock._on_generate_pressed()
		out["refused"][case[0]] = [dock._message.text, dock._job == null]
	dock._seed.text = MAX_SEED
	dock._folder.text = "res://pixelkiln_moved"
	dock._on_generate_pressed()
	var job: Client.Job = dock._job
	if job == null:
		out["error"] = "no job: " + dock._message.text
		return out
	await job.progress
	out["done_when_moved"] = job.done
	first_parent.remove_child(dock)  # floated: out of the tree for a few frames
	for _frame in 3:
		await tree.process_frame
	second_parent.add_child(dock)
	await job.wait()
	for _frame in 3:  # the dock saves, then tells the editor's file system in _process()
		await tree.process_frame
	out["job"] = [job.error_code_name, job.error_message, String.num_uint64(job.seed)]
	out["message"] = dock._message.text
	var shown: Texture2D = dock._preview.texture
	out["preview"] = [shown.get_width(), shown.get_height()] if shown != null else []
	out["still_connected"] = client.is_daemon_connected()
	out["updated"] = editor.filesystem.updated
	out["reimported"] = editor.filesystem.reimported
	dock.free()
	out["after_free"] = client.get_state()
	first_parent.free()
	second_parent.free()
	return out


static func _request(prompt: String, count: int) -> PK.GenerateRequestMsg:
	var request := PK.GenerateRequestMsg.new()
	request.prompt = prompt
	request.num_images = count
	request.maps = [PK.MapKind.MAP_KIND_NORMAL]
	return request


## A result of 4x4 PNGs (each a different shade), one per seed, each with a normal map.
static func _result(seeds: Array, shades: Array) -> PK.ResultMsg:
	var result := PK.ResultMsg.new()
	for i in seeds.size():
		var generated := PK.GeneratedImageMsg.new()
		generated.seed = seeds[i]
		generated.index = i
		generated.image = _png(shades[i])
		var normal := PK.DerivedMapMsg.new()
		normal.kind = PK.MapKind.MAP_KIND_NORMAL
		normal.image = _png(shades[i] + 100)
		generated.maps.append(normal)
		result.images.append(generated)
	return result


static func _png(shade: int) -> PK.ImageMsg:
	var image := Image.create(4, 4, false, Image.FORMAT_RGBA8)
	image.fill(Color8(shade, shade, shade))
	var message := PK.ImageMsg.new()
	message.data = image.save_png_to_buffer()
	message.encoding = PK.Encoding.ENCODING_PNG
	message.width = 4
	message.height = 4
	return message


## EditorInterface's methods that dock.gd uses.
class FakeEditor:
	extends RefCounted
	var settings: RefCounted
	var filesystem := FakeFileSystem.new()

	func _init(editor_settings: RefCounted) -> void:
		settings = editor_settings

	func get_editor_settings() -> RefCounted:
		return settings

	func get_resource_filesystem() -> RefCounted:
		return filesystem


## EditorFileSystem's methods that dock.gd uses: records what it is told.
class FakeFileSystem:
	extends RefCounted
	var updated := []
	var reimported := []

	func is_scanning() -> bool:
		return false

	func update_file(path: String) -> void:
		updated.append(path)

	func reimport_files(paths: PackedStringArray) -> void:
		reimported.append_array(Array(paths))
