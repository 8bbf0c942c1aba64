@tool
extends VBoxContainer
## The PixelKiln dock: connection and status, a request form, progress, preview and cancel,
## results saved under res://pixelkiln/ (only those files are imported), and live img2img from a
## texture or an editor viewport. Its settings persist (dock_settings.gd).
##
## "Start daemon" runs a local `pixelkiln serve` for the URL's port (dock_daemon.gd).
##
## Thin on purpose: the protocol lives in client/pixelkiln_client.gd, saving (atomic files,
## .import settings) in asset_writer.gd and the checks of the seed and folder in dock_request.gd;
## this file only wires controls to them. Nothing here blocks the editor: the client polls itself
## each frame and every answer arrives as a signal.
##
## The editor is reached through [member editor] (EditorInterface, looked up by name), never by
## an editor class's name, so that this script also loads in a release build: the real Godot of
## tests/clients_gd runs the dock there with a stand-in editor.

const Client = preload("client/pixelkiln_client.gd")
const PK = preload("generated/pixelkiln_v1.gd")
const AssetWriter = preload("asset_writer.gd")
const DockSettings = preload("dock_settings.gd")
const DaemonPanel = preload("dock_daemon.gd")
const Widgets = preload("dock_widgets.gd")
const LiveOptions = preload("dock_live_options.gd")
const Checks = preload("dock_request.gd")  # before MAPS
const LIVE_INTERVAL_MS := 125
const LIVE_MAX_IN_FLIGHT := 2
const LIVE_DEFAULT_SIDE := 512
const MAPS := Checks.MAPS
const LIVE_SOURCES := ["Texture", "2D viewport", "3D viewport"]

## EditorInterface (or a stand-in with get_editor_settings(), get_resource_filesystem() and
## get_editor_viewport_2d/3d()); null: the editor's, looked up when the dock enters the tree.
var editor: Object = null
var _client: Client = null
var _job: Client.Job = null
var _live: Client.LiveSession = null
var _live_sent_ms := 0
var _live_in_flight := 0
var _live_last_hash := 0
var _live_dirty := false
## Files saved but not yet known to the editor (added and imported once it is not scanning).
var _unimported := PackedStringArray()
## Whether the dock connects when it enters the tree (off after "Disconnect"; persisted).
var _connect_when_opened := true

var _url: LineEdit
var _connect_button: Button
var _status: Label
var _daemon: DaemonPanel
var _prompt: TextEdit
var _negative: LineEdit
var _width: SpinBox
var _height: SpinBox
var _steps: SpinBox
var _seed: LineEdit
var _random_seed: CheckBox
var _tiling: OptionButton
var _transparent: CheckBox
var _trim: CheckBox
var _map_boxes := {}
var _count: SpinBox
var _atlas: CheckBox
var _folder: LineEdit
var _generate_button: Button
var _cancel_button: Button
var _progress: ProgressBar
var _preview: TextureRect
var _message: Label
var _live_toggle: CheckButton
var _live_source: OptionButton
var _live_texture: Control  # an EditorResourcePicker in the editor
var _strength: HSlider
var _live_options := LiveOptions.new()


func _ready() -> void:
	if editor == null:
		editor = Engine.get_singleton("EditorInterface")
	_build()
	var settings: Object = editor.get_editor_settings()
	var daemon := DockSettings.load_daemon(settings, Client.DEFAULT_URL)
	DockSettings.register_security(settings)
	_url.text = daemon["url"]
	_daemon.setup(settings, _url)
	_daemon.started.connect(_on_daemon_started)
	_connect_when_opened = daemon["connect"]
	var controls := _form_controls()
	DockSettings.apply(controls, DockSettings.load_form(settings, DockSettings.values_of(controls)))
	_client = Client.new()
	_client.connected.connect(_on_connected)
	_client.disconnected.connect(_on_disconnected)
	_connect_if_wanted()
	_refresh()


func _enter_tree() -> void:
	if _client != null:
		_connect_if_wanted()
		_refresh()


## Moving or floating the dock takes it out of the tree and back: the connection, the running
## generation and the live session stay (the client polls itself, not through the dock). Only
## freeing the dock (the plugin disabled, the editor closing) disconnects.
func _exit_tree() -> void:
	if _client != null:
		_save_settings()


func _notification(what: int) -> void:
	if what == NOTIFICATION_PREDELETE and _client != null:
		_client.connected.disconnect(_on_connected)
		_client.disconnected.disconnect(_on_disconnected)
		_client.disconnect_from_daemon()


func _process(_delta: float) -> void:
	if not _unimported.is_empty():
		var filesystem: Object = editor.get_resource_filesystem()
		if not filesystem.is_scanning():
			_import_saved(filesystem)
	if _live != null and _live.active:
		_send_live_frame()


## Tells the editor about the files just written and imports the images among them (with the
## settings of their .import files), instead of scanning the whole project.
func _import_saved(filesystem: Object) -> void:
	var images := PackedStringArray()
	for path in _unimported:
		filesystem.update_file(path)
		if path.get_extension() == "png":
			images.append(path)
	_unimported = PackedStringArray()
	if not images.is_empty():
		filesystem.reimport_files(images)


# ---- connection ------------------------------------------------------------------------


func _on_connect_pressed() -> void:
	_connect_when_opened = _client.get_state() == Client.State.DISCONNECTED
	if _connect_when_opened:
		DockSettings.configure(_client, editor.get_editor_settings())
		_client.connect_to_daemon(_url.text.strip_edges())
		if not _client.last_error.is_empty():
			_status.text = _client.last_error
	else:
		_client.disconnect_from_daemon()
	_save_settings()
	_refresh()


func _connect_if_wanted() -> void:
	if _connect_when_opened and _client.get_state() == Client.State.DISCONNECTED:
		DockSettings.configure(_client, editor.get_editor_settings())
		_client.connect_to_daemon(_url.text.strip_edges())
		if not _client.last_error.is_empty():
			_status.text = _client.last_error


## A daemon started from the dock: connect now (retrying while it warms up), not at the end of
## a long reconnect pause.
func _on_daemon_started() -> void:
	_connect_when_opened = true
	if not _client.is_daemon_connected():
		DockSettings.configure(_client, editor.get_editor_settings())
		_client.connect_to_daemon(_url.text.strip_edges())
	_save_settings()
	_refresh()


func _save_settings() -> void:
	var settings: Object = editor.get_editor_settings()
	DockSettings.save_daemon(settings, _url.text.strip_edges(), _connect_when_opened)
	DockSettings.save_form(settings, DockSettings.values_of(_form_controls()))


func _on_connected() -> void:
	_status.text = "Connected to " + _client.url
	_refresh()
	var job := _client.status()
	await job.completed
	if job.is_ok():
		var status: PK.StatusResponseMsg = job.response
		_status.text = (
			"Connected: " + status.default_model + " on " + status.device + " " + status.dtype
		)


func _on_disconnected(reason: String) -> void:
	_status.text = reason
	_refresh()


# ---- one generation --------------------------------------------------------------------


func _on_generate_pressed() -> void:
	if _job != null and not _job.done:
		return
	var checked := Checks.save_folder(_folder.text)
	var seed_value := _seed_value()
	var problem: String = (
		checked["error"] if seed_value["error"].is_empty() else seed_value["error"]
	)
	if not problem.is_empty():
		_message.text = problem
		return
	var folder: String = checked["folder"]
	_folder.text = folder
	var request := _build_request(seed_value["seed"])
	_save_settings()
	_progress.value = 0
	_message.text = "Generating..."
	var job := _client.generate(request)
	_job = job
	job.accepted.connect(_on_accepted)
	job.progress.connect(_on_progress)
	job.preview.connect(_show_image)
	_refresh()
	await job.completed
	_refresh()
	if not job.is_ok():
		_message.text = job.error_text()
		return
	_show_image(job.image_bytes(0))
	var saved := AssetWriter.save_result(job.result, request, folder)
	var paths: Array = saved["paths"]
	var errors: Array = saved["errors"]
	_message.text = "Saved " + ", ".join(PackedStringArray(paths))
	if not errors.is_empty():
		_message.text = "Could not save " + ", ".join(PackedStringArray(errors))
	for error in errors:
		push_error("PixelKiln: could not save " + str(error))
	_unimported.append_array(PackedStringArray(paths))


func _on_cancel_pressed() -> void:
	if _job != null and not _job.done:
		_job.cancel()
		_message.text = "Cancelling..."


func _on_accepted(seed_value: int) -> void:
	_message.text = "Seed " + String.num_uint64(seed_value)


func _on_progress(step: int, total: int) -> void:
	_progress.max_value = total
	_progress.value = step


## {"seed": int, "error": String}: the seed field (0 and no error while "random" is on).
func _seed_value() -> Dictionary:
	if _random_seed.button_pressed:
		return {"seed": 0, "error": ""}
	return Checks.parse_seed(_seed.text)


func _build_request(seed_value: int) -> PK.GenerateRequestMsg:
	var form := DockSettings.values_of(_form_controls())
	return Checks.request_from(form, null if _random_seed.button_pressed else seed_value)


## The controls whose values persist per project (dock_settings.gd), by key.
func _form_controls() -> Dictionary:
	var controls := {
		"prompt": _prompt,
		"negative_prompt": _negative,
		"width": _width,
		"height": _height,
		"steps": _steps,
		"count": _count,
		"tiling": _tiling,
		"transparent": _transparent,
		"trim": _trim,
		"atlas": _atlas,
		"folder": _folder,
	}
	for map_name in MAPS:
		controls["map_" + map_name] = _map_boxes[map_name]
	return controls


func _show_image(image_bytes: PackedByteArray) -> void:
	var image := Client.decode(image_bytes)
	if image != null:
		_preview.texture = ImageTexture.create_from_image(image)


# ---- live ------------------------------------------------------------------------------


func _on_live_toggled(on: bool) -> void:
	if not on:
		if _live != null:
			_live.end()
		return
	var seed_value := _seed_value()
	if not seed_value["error"].is_empty():
		_message.text = seed_value["error"]
		_live_toggle.set_pressed_no_signal(false)
		return
	var settings := _live_settings()
	settings.width = _live_side(_width.value)
	settings.height = _live_side(_height.value)
	settings.steps = int(_steps.value) if _steps.value > 0 else 2
	settings.output_encoding = PK.Encoding.ENCODING_JPEG
	if not _random_seed.button_pressed:
		settings.seed = seed_value["seed"]
	_live = _client.start_live(settings)
	_live.frame.connect(_on_live_frame)
	_live.ended.connect(_on_live_ended)
	_live_in_flight = 0
	_live_last_hash = 0
	_live_dirty = false


func _send_live_frame() -> void:
	var now := Time.get_ticks_msec()
	if now - _live_sent_ms < LIVE_INTERVAL_MS or _live_in_flight >= LIVE_MAX_IN_FLIGHT:
		return
	var picked: Variant = _live_texture.get("edited_resource")
	var source := _live_source.selected
	var side := Vector2i(_live_side(_width.value), _live_side(_height.value))
	var image := LiveOptions.capture(source, picked, editor, side)
	if image == null:
		return
	var pixels := image.get_data()
	var digest := hash(pixels)
	if digest == _live_last_hash and not _live_dirty:
		return
	var settings := _live_settings() if _live_dirty else null
	if _live.send_rgba8(pixels, image.get_width(), image.get_height(), settings) > 0:
		_live_sent_ms = now
		_live_in_flight += 1
		_live_last_hash = digest
		_live_dirty = false


func _on_live_frame(_seq: int, image_bytes: PackedByteArray, message: RefCounted) -> void:
	var frame: PK.LiveFrameMsg = message
	_live_in_flight = maxi(0, _live_in_flight - 1 - frame.skipped)
	_live_options.show_applied(frame)
	if not image_bytes.is_empty() and frame.image != null:
		var image := Client.decode_image(frame.image)  # raw RGBA8 (fast frames), PNG or JPEG
		if image != null:
			_preview.texture = ImageTexture.create_from_image(image)


func _on_live_ended(code_name: String, message: String) -> void:
	_live = null
	_live_toggle.set_pressed_no_signal(false)
	if not code_name.is_empty():
		_message.text = "Live: " + code_name + ": " + message


func _on_live_setting_changed(_value: Variant = null) -> void:
	_live_dirty = true


func _live_settings() -> PK.LiveSettingsMsg:
	var settings := PK.LiveSettingsMsg.new()
	settings.prompt = _prompt.text.strip_edges()
	settings.negative_prompt = _negative.text.strip_edges()
	settings.strength = _strength.value
	_live_options.apply(settings)
	return settings


func _live_side(value: float) -> int:
	return int(value) if value >= 64 else LIVE_DEFAULT_SIDE


# ---- layout ----------------------------------------------------------------------------


func _refresh() -> void:
	var up := _client != null and _client.is_daemon_connected()
	var busy := _job != null and not _job.done
	var down := _client == null or _client.get_state() == Client.State.DISCONNECTED
	_connect_button.text = "Connect" if down else "Disconnect"
	_generate_button.disabled = not up or busy
	_cancel_button.disabled = not busy
	_live_toggle.disabled = not up


func _build() -> void:
	_url = LineEdit.new()
	_url.text = Client.DEFAULT_URL
	_connect_button = Widgets.button("Connect", _on_connect_pressed)
	Widgets.add_row(self, "Daemon", [_url, _connect_button])
	_status = Widgets.label("Not connected")
	add_child(_status)
	_daemon = DaemonPanel.new()
	add_child(_daemon)

	_prompt = TextEdit.new()
	_prompt.placeholder_text = "mossy cobblestone, top-down, seamless"
	_prompt.custom_minimum_size = Vector2(0, 64)
	_prompt.text_changed.connect(_on_live_setting_changed)
	add_child(_prompt)
	_negative = LineEdit.new()
	_negative.placeholder_text = "negative prompt"
	_negative.text_changed.connect(_on_live_setting_changed)
	add_child(_negative)

	_width = Widgets.spin(0, 2048, 8, 512)
	_height = Widgets.spin(0, 2048, 8, 512)
	Widgets.add_row(self, "Size (0: model's)", [_width, _height])
	_steps = Widgets.spin(0, 50, 1, 0)
	_count = Widgets.spin(1, 8, 1, 1)
	Widgets.add_row(self, "Steps / count", [_steps, _count])
	_seed = LineEdit.new()  # a uint64: more than a SpinBox (a float) holds exactly
	_seed.placeholder_text = "0"
	_random_seed = Widgets.check("random", true)
	Widgets.add_row(self, "Seed", [_seed, _random_seed])

	_tiling = OptionButton.new()
	for axis in ["none", "x", "y", "xy"]:
		_tiling.add_item(axis)  # ids 0..3 are the Tiling enum values
	_transparent = Widgets.check("transparent", false)
	_trim = Widgets.check("trim", false)
	Widgets.add_row(self, "Tiling", [_tiling, _transparent, _trim])
	var maps: Array[Control] = []
	for map_name in MAPS:
		_map_boxes[map_name] = Widgets.check(map_name, false)
		maps.append(_map_boxes[map_name])
	Widgets.add_row(self, "Maps", maps)
	_atlas = Widgets.check("pack the images into an atlas", false)
	add_child(_atlas)
	_folder = LineEdit.new()
	_folder.text = AssetWriter.DEFAULT_FOLDER
	Widgets.add_row(self, "Save to", [_folder])

	_generate_button = Widgets.button("Generate", _on_generate_pressed)
	_cancel_button = Widgets.button("Cancel", _on_cancel_pressed)
	Widgets.add_row(self, "", [_generate_button, _cancel_button])
	_progress = ProgressBar.new()
	add_child(_progress)
	_message = Widgets.label("")
	add_child(_message)

	_live_toggle = CheckButton.new()
	_live_toggle.text = "Live"
	_live_toggle.toggled.connect(_on_live_toggled)
	_live_source = OptionButton.new()
	for source in LIVE_SOURCES:
		_live_source.add_item(source)
	Widgets.add_row(self, "", [_live_toggle, _live_source])
	_live_texture = Widgets.resource_picker("Texture2D")
	_strength = HSlider.new()
	_strength.min_value = 0.05
	_strength.max_value = 1.0
	_strength.step = 0.05
	_strength.value = 0.5
	_strength.value_changed.connect(_on_live_setting_changed)
	Widgets.add_row(self, "Source / strength", [_live_texture, _strength])
	_live_options.build(self, _on_live_setting_changed)

	_preview = TextureRect.new()
	_preview.custom_minimum_size = Vector2(0, 256)
	_preview.expand_mode = TextureRect.EXPAND_IGNORE_SIZE
	_preview.stretch_mode = TextureRect.STRETCH_KEEP_ASPECT_CENTERED
	add_child(_preview)
