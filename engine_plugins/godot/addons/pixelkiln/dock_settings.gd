@tool
extends RefCounted
## What the dock remembers between editor sessions.
##
## The daemon (its URL, and whether to connect when the dock opens) lives in the editor's
## settings: one daemon per machine, for every project. The form (prompt, size, steps, maps,
## save folder...) lives in the project's editor metadata
## ([code].godot/editor/project_metadata.cfg[/code]): per project, never committed.
## [param settings] is an [EditorSettings] (untyped: the tests pass a stand-in with the same
## methods, since a release build has no editor classes).

const URL_SETTING := "pixelkiln/daemon/url"
const CONNECT_SETTING := "pixelkiln/daemon/connect_when_opened"
const FORM_SECTION := "pixelkiln"


## {"url": String, "connect": bool}, from the settings or the defaults.
static func load_daemon(settings, default_url: String) -> Dictionary:
	var url: Variant = settings.get_setting(URL_SETTING) if settings.has_setting(URL_SETTING) else null
	var auto: Variant = (
		settings.get_setting(CONNECT_SETTING) if settings.has_setting(CONNECT_SETTING) else null
	)
	return {
		"url": url if url is String and not (url as String).is_empty() else default_url,
		"connect": auto if auto is bool else true,
	}


static func save_daemon(settings, url: String, auto_connect: bool) -> void:
	settings.set_setting(URL_SETTING, url)
	settings.set_setting(CONNECT_SETTING, auto_connect)


## The saved form over [param defaults]: only the keys of the defaults, and a saved value of
## another type than its default's (an older or hand-edited file) is ignored.
static func load_form(settings, defaults: Dictionary) -> Dictionary:
	var out := {}
	for key in defaults:
		var saved: Variant = settings.get_project_metadata(FORM_SECTION, key, defaults[key])
		var same_type := typeof(saved) == typeof(defaults[key])
		var both_numbers := typeof(saved) in [TYPE_INT, TYPE_FLOAT] and (
			typeof(defaults[key]) in [TYPE_INT, TYPE_FLOAT]
		)
		out[key] = saved if same_type or both_numbers else defaults[key]
	return out


static func save_form(settings, form: Dictionary) -> void:
	for key in form:
		settings.set_project_metadata(FORM_SECTION, key, form[key])


## The value of each control of [param controls] (key -> LineEdit, TextEdit, Range, OptionButton
## or BaseButton): its text, value, selected id or pressed state.
static func values_of(controls: Dictionary) -> Dictionary:
	var out := {}
	for key in controls:
		var control: Control = controls[key]
		if control is LineEdit:
			out[key] = (control as LineEdit).text
		elif control is TextEdit:
			out[key] = (control as TextEdit).text
		elif control is Range:
			out[key] = (control as Range).value
		elif control is OptionButton:
			out[key] = (control as OptionButton).get_selected_id()
		elif control is BaseButton:
			out[key] = (control as BaseButton).button_pressed
	return out


## Sets each control of [param controls] from [param values] (the inverse of values_of()).
static func apply(controls: Dictionary, values: Dictionary) -> void:
	for key in controls:
		if not values.has(key):
			continue
		var control: Control = controls[key]
		var value: Variant = values[key]
		if control is LineEdit:
			(control as LineEdit).text = str(value)
		elif control is TextEdit:
			(control as TextEdit).text = str(value)
		elif control is Range:
			(control as Range).value = float(value)
		elif control is OptionButton:
			var option := control as OptionButton
			var index := option.get_item_index(int(value))
			if index >= 0:
				option.select(index)
		elif control is BaseButton:
			(control as BaseButton).button_pressed = bool(value)
