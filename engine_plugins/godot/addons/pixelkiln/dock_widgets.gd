@tool
extends RefCounted
## Small builders of the dock's controls.


static func add_row(parent: Control, title: String, controls: Array) -> void:
	var row := HBoxContainer.new()
	if not title.is_empty():
		var heading := label(title)
		heading.custom_minimum_size = Vector2(110, 0)
		row.add_child(heading)
	for control in controls:
		control.size_flags_horizontal = Control.SIZE_EXPAND_FILL
		row.add_child(control)
	parent.add_child(row)


static func label(text: String) -> Label:
	var made := Label.new()
	made.text = text
	made.autowrap_mode = TextServer.AUTOWRAP_WORD_SMART
	return made


static func button(text: String, on_pressed: Callable) -> Button:
	var made := Button.new()
	made.text = text
	made.pressed.connect(on_pressed)
	return made


static func check(text: String, pressed: bool) -> CheckBox:
	var box := CheckBox.new()
	box.text = text
	box.button_pressed = pressed
	return box


static func spin(low: float, high: float, step: float, value: float) -> SpinBox:
	var made := SpinBox.new()
	made.min_value = low
	made.max_value = high
	made.step = step
	made.value = value
	return made


## An EditorResourcePicker for [param base_type]; an empty Control where there is no editor (the
## release build that tests/clients_gd runs the dock in).
static func resource_picker(base_type: String) -> Control:
	if not ClassDB.class_exists("EditorResourcePicker"):
		return Control.new()
	var picker: Control = ClassDB.instantiate("EditorResourcePicker")
	picker.set("base_type", base_type)
	return picker
