extends Node
## Main scene of the web test project that tools/godot_web packs: Godot's web template ignores
## `--script`, so this scene runs the checks of tests/clients_gd/e2e.gd (unchanged, the same
## script the interpreter runs) and prints one line, MARKER + JSON, then quits.
##
## res://run.json (written by the packer) holds the URLs: "url" for run(), and optionally
## "faults" (the four URLs of run_faults()) and "timeouts" (the two of run_timeouts()). Then
## asset_writer.gd saves a tiled result with a normal map under user:// (twice: no overwrite)
## and the engine decodes the files it wrote; the dock's settings make a round trip through a
## stand-in of EditorSettings with real controls; the addon's .gd.uid texts go through
## ResourceUID (text -> id -> text). With "launcher" (a list of [name, args]), daemon_command.gd
## runs those calls, and the daemon launcher and the dock's daemon panel run what a web build can
## (no processes here: OS.execute_with_pipe is desktop-only).
## Byte arrays travel as {"base64": ...}. A run that exceeds "deadline_ms" reports the stage
## it was in and quits with 2, so a hang ends with a reason. With "secure" ({"url", "token"}),
## only tests/clients_gd/secure.gd's run_refused() runs, against a daemon with tokens. With "dock"
## (true), tests/clients_gd/dock_checks.gd runs too: the dock itself, the no-overwrite names, ...

const E2E = preload("res://tests/e2e.gd")
const Secure = preload("res://tests/secure.gd")
const DockChecks = preload("res://tests/dock_checks.gd")
const Client = preload("res://addons/pixelkiln/client/pixelkiln_client.gd")
const PK = preload("res://addons/pixelkiln/generated/pixelkiln_v1.gd")
const AssetWriter = preload("res://addons/pixelkiln/asset_writer.gd")
const DockSettings = preload("res://addons/pixelkiln/dock_settings.gd")
const Command = preload("res://addons/pixelkiln/daemon_command.gd")
const Launcher = preload("res://addons/pixelkiln/daemon_launcher.gd")
const DaemonPanel = preload("res://addons/pixelkiln/dock_daemon.gd")
const MARKER := "PIXELKILN_REPORT "

var _stage := "starting"
var _done := false


func _ready() -> void:
	var config: Dictionary = JSON.parse_string(FileAccess.get_file_as_string("res://run.json"))
	var deadline := get_tree().create_timer(float(config.get("deadline_ms", 60000)) / 1000.0)
	deadline.timeout.connect(_on_deadline)
	var harness := E2E.new()
	var out := {"engine": Engine.get_version_info()["string"], "web": OS.has_feature("web")}
	if config.has("secure"):  # a daemon with tokens: what a browser's WebSocket can do
		_stage = "secure"
		var secure: Dictionary = config["secure"]
		out["secure"] = await Secure.new().run_refused(secure["url"], secure["token"], "")
		harness.free()
		_finish(out, 0)
		return
	_stage = "run"
	out["run"] = await harness.run(config["url"])
	if config.has("faults"):
		_stage = "run_faults"
		var urls: Array = config["faults"]
		out["faults"] = await harness.run_faults(urls[0], urls[1], urls[2], urls[3])
	if config.has("timeouts"):
		_stage = "run_timeouts"
		var urls: Array = config["timeouts"]
		out["timeouts"] = await harness.run_timeouts(urls[0], urls[1])
	_stage = "assets"
	out["assets"] = await _save_assets(config["url"])
	var uids := {}
	for path in config.get("uids", {}):
		var text: String = config["uids"][path]
		uids[path] = ResourceUID.id_to_text(ResourceUID.text_to_id(text))
	out["uids"] = uids
	_stage = "settings"
	out["settings"] = _dock_settings()
	if config.has("launcher"):
		_stage = "launcher"
		out["launcher"] = _launcher(config["launcher"])
	if config.get("dock", false):
		_stage = "dock"
		out["dock"] = await DockChecks.new().run(self, config["url"], FakeSettings.new())
	out["problems"] = harness.problems.duplicate()
	harness.free()
	_finish(out, 1 if out["problems"].size() > 0 else 0)


## A 64x64 tiled generation with a normal map, saved by the addon's writer and read back.
func _save_assets(url: String) -> Dictionary:
	var client := Client.new()
	client.auto_reconnect = false
	client.connect_to_daemon(url)
	var request := PK.GenerateRequestMsg.new()
	request.prompt = "Mossy stone!"
	request.width = 64
	request.height = 64
	request.steps = 1
	request.seed = 7
	request.tiling = PK.Tiling.TILING_XY
	request.maps = [PK.MapKind.MAP_KIND_NORMAL]
	request.output_encoding = PK.Encoding.ENCODING_PNG
	var job: Client.Job = await client.generate(request).completed
	client.disconnect_from_daemon()
	if not job.is_ok():
		return {"error": job.error_text()}
	var folder := "user://pixelkiln_" + str(Time.get_ticks_usec())
	var first := AssetWriter.save_result(job.result, request, folder)
	var again := AssetWriter.save_result(job.result, request, folder)
	var sizes := {}
	var same_bytes := {}
	for path in first["paths"]:
		var data := FileAccess.get_file_as_bytes(path)
		var image := Image.new()
		if image.load_png_from_buffer(data) == OK:
			sizes[path.get_file()] = [image.get_width(), image.get_height()]
		same_bytes[path.get_file()] = data == _sent_bytes(job.result, path)
	var import_text := FileAccess.get_file_as_string(first["paths"][0] + ".import")
	return {
		"paths": first["paths"],
		"errors": first["errors"] + again["errors"],
		"again": again["paths"],
		"files": Array(DirAccess.get_files_at(folder)),
		"sizes": sizes,
		"same_bytes": same_bytes,
		"import": import_text,
	}


## The bytes the daemon sent for the asset saved at [param path].
static func _sent_bytes(result: PK.ResultMsg, path: String) -> PackedByteArray:
	var generated: PK.GeneratedImageMsg = result.images[0]
	return generated.maps[0].image.data if path.ends_with("_normal.png") else generated.image.data


## Saves a form of real controls, changes them, loads it back; daemon settings with defaults.
func _dock_settings() -> Dictionary:
	var store := FakeSettings.new()
	var out := {"daemon_default": DockSettings.load_daemon(store, "ws://127.0.0.1:50052/v1")}
	DockSettings.save_daemon(store, "ws://10.0.0.2:50052/v1", false)
	out["daemon_saved"] = DockSettings.load_daemon(store, "ws://127.0.0.1:50052/v1")
	DockSettings.register_security(store)
	var client := Client.new(false)
	DockSettings.configure(client, store)
	out["security_default"] = [client.token, client.tls_ca_path]
	store.set_setting(DockSettings.TOKEN_SETTING, " pk_studio-token ")
	store.set_setting(DockSettings.CA_SETTING, "/studio/ca.pem")
	DockSettings.register_security(store)  # keeps what is set
	DockSettings.configure(client, store)
	out["security_saved"] = [client.token, client.tls_ca_path]
	var token_info: Dictionary = store.metadata["info/" + DockSettings.TOKEN_SETTING]
	out["token_masked"] = token_info["hint"] == PROPERTY_HINT_PASSWORD
	var prompt := TextEdit.new()
	var folder := LineEdit.new()
	var width := SpinBox.new()
	var tiling := OptionButton.new()
	var trim := CheckBox.new()
	width.max_value = 2048
	for axis in ["none", "x", "y", "xy"]:
		tiling.add_item(axis)
	var controls := {
		"prompt": prompt, "folder": folder, "width": width, "tiling": tiling, "trim": trim
	}
	prompt.text = "mossy stone"
	folder.text = "res://art"
	width.value = 256
	tiling.select(3)
	trim.button_pressed = true
	var defaults := DockSettings.values_of(controls)
	out["values"] = defaults
	DockSettings.save_form(store, defaults)
	store.metadata["pixelkiln/folder"] = 7  # a hand-edited file: wrong type, ignored
	prompt.text = ""
	folder.text = "res://pixelkiln"
	width.value = 0
	tiling.select(0)
	trim.button_pressed = false
	DockSettings.apply(controls, DockSettings.load_form(store, DockSettings.values_of(controls)))
	out["restored"] = DockSettings.values_of(controls)
	for control in controls.values():
		control.free()
	return out


## daemon_command.gd on [param calls]; the launcher and the dock's daemon panel without a process.
func _launcher(calls: Array) -> Dictionary:
	var results := []
	var command: Script = Command  # a static function, called by name through the script
	for each in calls:
		var args := []
		for arg in each[1]:
			args.append(int(arg) if arg is float and arg == floorf(arg) else arg)
		results.append(command.callv(each[0], args))
	var store := FakeSettings.new()
	var earlier := {"pid": 4242, "started": 1796500000.0, "editor_pid": OS.get_process_id() + 1}
	store.metadata["pixelkiln/daemon_process"] = earlier
	var launcher := Launcher.new(store)
	var out := {"calls": results, "note": launcher.take_previous_note()}
	out["record_after"] = store.metadata["pixelkiln/daemon_process"]
	out["note_again"] = launcher.take_previous_note()
	out["remote"] = launcher.start("", "ws://10.0.0.2:50052/v1", "")
	out["running"] = launcher.is_running()
	launcher.stop(1.0)
	launcher.pump()
	launcher.release()
	out["tail_before_start"] = launcher.log_tail()
	var url := LineEdit.new()
	url.text = "ws://10.0.0.2:50052/v1"
	var panel := DaemonPanel.new()
	add_child(panel)
	panel.setup(store, url)
	out["button"] = panel._button.text
	panel._on_button_pressed()
	out["panel_state"] = panel._state.text
	out["grace"] = DockSettings.load_launcher(store)["grace_s"]
	var info: Dictionary = store.metadata["info/" + DockSettings.EXECUTABLE_SETTING]
	out["executable_picker"] = info["hint"] == PROPERTY_HINT_GLOBAL_FILE
	panel.free()
	url.free()
	return out


func _on_deadline() -> void:
	_finish({"deadline": _stage}, 2)


func _finish(out: Dictionary, code: int) -> void:
	if _done:
		return
	_done = true
	print(MARKER + JSON.stringify(_plain(out)))
	get_tree().quit(code)


## The value with every PackedByteArray as {"base64": ...} (JSON has no bytes).
static func _plain(value: Variant) -> Variant:
	if value is PackedByteArray:
		return {"base64": Marshalls.raw_to_base64(value)}
	if value is Dictionary:
		var out := {}
		for key in value:
			out[str(key)] = _plain(value[key])
		return out
	if value is Array:
		var items := []
		for item in value:
			items.append(_plain(item))
		return items
	return value


## EditorSettings' methods that dock_settings.gd uses, over dictionaries.
class FakeSettings:
	extends RefCounted
	var values := {}
	var metadata := {}

	func has_setting(name: String) -> bool:
		return values.has(name)

	func get_setting(name: String) -> Variant:
		return values[name]

	func set_setting(name: String, value: Variant) -> void:
		values[name] = value

	func get_project_metadata(section: String, key: String, fallback: Variant = null) -> Variant:
		return metadata.get(section + "/" + key, fallback)

	func set_project_metadata(section: String, key: String, data: Variant) -> void:
		metadata[section + "/" + key] = data

	func add_property_info(info: Dictionary) -> void:
		metadata["info/" + str(info["name"])] = info
