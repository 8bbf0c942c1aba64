extends Node
## Main scene of the web test project that tools/godot_web packs: Godot's web template ignores
## `--script`, so this scene runs the checks of tests/clients_gd/e2e.gd (unchanged, the same
## script the interpreter runs) and prints one line, MARKER + JSON, then quits.
##
## res://run.json (written by the packer) holds the URLs: "url" for run(), and optionally
## "faults" (the four URLs of run_faults()) and "timeouts" (the two of run_timeouts()).
## Byte arrays travel as {"base64": ...}. A run that exceeds "deadline_ms" reports the stage
## it was in and quits with 2, so a hang ends with a reason.

const E2E = preload("res://tests/e2e.gd")
const MARKER := "PIXELKILN_REPORT "

var _stage := "starting"
var _done := false


func _ready() -> void:
	var config: Dictionary = JSON.parse_string(FileAccess.get_file_as_string("res://run.json"))
	var deadline := get_tree().create_timer(float(config.get("deadline_ms", 60000)) / 1000.0)
	deadline.timeout.connect(_on_deadline)
	var harness := E2E.new()
	var out := {"engine": Engine.get_version_info()["string"], "web": OS.has_feature("web")}
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
	out["problems"] = harness.problems.duplicate()
	harness.free()
	_finish(out, 1 if out["problems"].size() > 0 else 0)


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
