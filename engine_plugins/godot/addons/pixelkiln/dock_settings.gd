@tool
extends RefCounted
## What the dock remembers between editor sessions.
##
## The daemon (its URL, whether to connect when the dock opens, its token and the CA of its
## certificate) lives in the editor's settings: one daemon per machine, for every project, and
## a token never lands in a project's files. The form (prompt, size, steps, maps,
## save folder...) lives in the project's editor metadata
## ([code].godot/editor/project_metadata.cfg[/code]): per project, never committed.
## [param settings] is an [EditorSettings] (untyped: the tests pass a stand-in with the same
## methods, since a release build has no editor classes).

const URL_SETTING := "pixelkiln/daemon/url"
const CONNECT_SETTING := "pixelkiln/daemon/connect_when_opened"
const TOKEN_SETTING := "pixelkiln/daemon/token"
const CA_SETTING := "pixelkiln/daemon/tls_ca_path"
const EXECUTABLE_SETTING := "pixelkiln/daemon/executable"
const EXTRA_SETTING := "pixelkiln/daemon/extra_arguments"
const GRACE_SETTING := "pixelkiln/daemon/stop_grace_seconds"
const DEFAULT_GRACE_S := 20.0
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


## Makes Editor Settings > PixelKiln > Daemon show the token (masked) and
## the CA file (a file picker); both empty by default.
static func register_security(settings) -> void:
	for name in [TOKEN_SETTING, CA_SETTING]:
		if not settings.has_setting(name):
			settings.set_setting(name, "")
	var token := {"name": TOKEN_SETTING, "type": TYPE_STRING, "hint": PROPERTY_HINT_PASSWORD}
	settings.add_property_info(token)
	var ca := {"name": CA_SETTING, "type": TYPE_STRING, "hint": PROPERTY_HINT_GLOBAL_FILE}
	ca["hint_string"] = "*.pem,*.crt"
	settings.add_property_info(ca)


## Makes Editor Settings > PixelKiln > Daemon show what "Start daemon" runs: Executable (a file
## picker; empty: the project's .venv, its parent folder's, then PATH), Extra Arguments for
## [code]pixelkiln serve[/code] (quotes group words) and Stop Grace Seconds (then a kill; more
## than the daemon's own --grace, 10 s by default).
static func register_launcher(settings) -> void:
	var defaults := {EXECUTABLE_SETTING: "", EXTRA_SETTING: "", GRACE_SETTING: DEFAULT_GRACE_S}
	for name in defaults:
		if not settings.has_setting(name):
			settings.set_setting(name, defaults[name])
	var executable := {"name": EXECUTABLE_SETTING, "type": TYPE_STRING}
	executable["hint"] = PROPERTY_HINT_GLOBAL_FILE
	settings.add_property_info(executable)
	settings.add_property_info({"name": EXTRA_SETTING, "type": TYPE_STRING})
	var grace := {"name": GRACE_SETTING, "type": TYPE_FLOAT, "hint": PROPERTY_HINT_RANGE}
	grace["hint_string"] = "1,600,1"
	settings.add_property_info(grace)


## {"executable": String, "extra": String, "grace_s": float} for the launcher.
static func load_launcher(settings) -> Dictionary:
	var grace: Variant = (
		settings.get_setting(GRACE_SETTING) if settings.has_setting(GRACE_SETTING) else null
	)
	var grace_ok := typeof(grace) in [TYPE_INT, TYPE_FLOAT] and float(grace) > 0.0
	return {
		"executable": _text(settings, EXECUTABLE_SETTING),
		"extra": _text(settings, EXTRA_SETTING),
		"grace_s": float(grace) if grace_ok else DEFAULT_GRACE_S,
	}


## Gives [param client] the token and CA of the settings (read at each connect, so an edit in
## Editor Settings applies to the next one). Empty: the client reads PIXELKILN_TOKEN and
## PIXELKILN_TLS_CA from the environment.
static func configure(client, settings) -> void:
	client.token = _text(settings, TOKEN_SETTING)
	client.tls_ca_path = _text(settings, CA_SETTING)


static func _text(settings, name: String) -> String:
	var value: Variant = settings.get_setting(name) if settings.has_setting(name) else ""
	return (value as String).strip_edges() if value is String else ""


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
