@tool
extends VBoxContainer
## The dock's "Start daemon" / "Stop daemon" row: runs daemon_launcher.gd with Editor Settings >
## PixelKiln > Daemon (Executable, Extra Arguments, Stop Grace Seconds) for the port of the
## dock's URL, says what happened, and shows the tail of the daemon's log when it fails.
## The launcher lives as long as this panel: moving or floating the dock keeps the daemon; closing
## the dock (disabling the plugin, quitting the editor) closes its standard input, and it stops.

## The daemon was started: the dock connects to it.
signal started

const Launcher = preload("daemon_launcher.gd")
const DockSettings = preload("dock_settings.gd")
const Widgets = preload("dock_widgets.gd")

var _settings = null
var _url: LineEdit = null
var _launcher: Launcher = null
var _button: Button
var _log_button: Button
var _state: Label
var _log: TextEdit


## [param settings]: the [EditorSettings]; [param url]: the dock's URL field.
func setup(settings, url: LineEdit) -> void:
	_settings = settings
	_url = url
	DockSettings.register_launcher(settings)
	_launcher = Launcher.new(settings)
	_launcher.exited.connect(_on_exited)
	_build()
	_state.text = _launcher.take_previous_note()
	_refresh()


func _process(_delta: float) -> void:
	if _launcher != null:
		_launcher.pump()


func _notification(what: int) -> void:
	if what == NOTIFICATION_PREDELETE and _launcher != null:
		_launcher.release()


func _on_button_pressed() -> void:
	var config := DockSettings.load_launcher(_settings)
	if _launcher.is_running():
		_launcher.stop(config["grace_s"])
		_state.text = "Stopping the daemon (pid " + str(_launcher.pid) + ")..."
	else:
		var error := _launcher.start(config["executable"], _url.text.strip_edges(), config["extra"])
		if error.is_empty():
			_state.text = (
				"Daemon started (pid " + str(_launcher.pid) + "): " + _launcher.executable
				+ "\nLog: " + _launcher.log_path
			)
			_log.visible = false
			started.emit()
		else:
			_state.text = "Could not start the daemon: " + error
	_refresh()


func _on_log_pressed() -> void:
	_log.visible = not _log.visible
	if _log.visible:
		_show_tail()


func _on_exited(asked: bool, message: String) -> void:
	_state.text = message.get_slice("\n", 0)
	_log.visible = not asked
	if not asked:
		push_warning("PixelKiln: " + message)
		_show_tail()
	_refresh()


func _show_tail() -> void:
	var tail := _launcher.log_tail()
	_log.text = tail if not tail.is_empty() else "(the log is empty: " + _launcher.log_path + ")"
	_log.scroll_vertical = _log.get_line_count()


func _refresh() -> void:
	var running := _launcher != null and _launcher.is_running()
	_button.text = "Stop daemon" if running else "Start daemon"
	_button.disabled = running and _launcher.stopping
	_log_button.disabled = _launcher == null or _launcher.log_path.is_empty()


func _build() -> void:
	_button = Widgets.button("Start daemon", _on_button_pressed)
	_button.tooltip_text = (
		"Runs pixelkiln serve on this machine for the URL's port (Editor Settings > PixelKiln >"
		+ " Daemon: Executable, Extra Arguments); it stops with the editor."
	)
	_log_button = Widgets.button("Log", _on_log_pressed)
	Widgets.add_row(self, "Local daemon", [_button, _log_button])
	_state = Widgets.label("")
	add_child(_state)
	_log = TextEdit.new()
	_log.editable = false
	_log.visible = false
	_log.custom_minimum_size = Vector2(0, 140)
	_log.wrap_mode = TextEdit.LINE_WRAPPING_BOUNDARY
	add_child(_log)
