@tool
extends EditorPlugin
## Adds the PixelKiln dock (right side, upper left slot) while the plugin is enabled.

const Dock = preload("dock.gd")

var _dock: Control = null


func _enter_tree() -> void:
	_dock = Dock.new()
	_dock.name = "PixelKiln"
	add_control_to_dock(DOCK_SLOT_RIGHT_UL, _dock)


func _exit_tree() -> void:
	if _dock != null:
		remove_control_from_docks(_dock)
		_dock.queue_free()
		_dock = null
