@tool
extends RefCounted
## Starts and stops a local [code]pixelkiln serve[/code] for the dock on Windows, macOS and Linux
## (Godot 4.3+: [method OS.execute_with_pipe], [method OS.get_process_exit_code]).
##
## - The daemon runs with [code]--stop-on-stdin-close[/code] and the editor holds its standard
##   input (the "stdio" pipe of execute_with_pipe). [method stop] closes it and the daemon stops
##   gracefully (in-flight work gets the daemon's [code]--grace[/code]); when the editor exits or
##   crashes the pipe closes with it and the daemon stops too. On macOS and Linux stop() also
##   sends SIGTERM ([code]kill -TERM[/code]): a process the editor forks later (the running game)
##   inherits the pipe's write end, so closing the editor's copy alone may not reach the daemon.
##   On Windows the pipe is the only graceful stop GDScript has (no console event to send), and
##   Godot passes a child only the handles it lists. A daemon still running after
##   [param grace_s] is killed ([method OS.kill]: SIGKILL, TerminateProcess on Windows).
## - Its output goes to [constant LOG_FILE] (in the project's .godot/, never committed):
##   [method pump], called each frame, moves what the pipes hold into it, reading only the bytes
##   there ([method FileAccess.get_length] is FIONREAD / PeekNamedPipe), so the editor never
##   blocks and the daemon never waits on a full pipe. Python writes UTF-8 to it
##   (PYTHONIOENCODING, set for the child only). Readiness is never read from the output: the
##   dock's client connects and asks the daemon's status.
## - A stale process id is never signalled: each start is recorded (pid, start time, the
##   editor's pid) in the project's editor metadata, and the kill acts only on the process this
##   launcher started, while [method OS.is_process_running] says it is still running: true only
##   for a live child of this editor (waitpid on Unix, the editor's own process table on Windows).
##   A record left by an earlier editor session is reported, never acted on.
## [param settings] is an [EditorSettings] (untyped: the tests pass a stand-in).

## The daemon is gone; [param asked]: after stop(); [param message]: what to tell the user.
signal exited(asked: bool, message: String)

const Command = preload("daemon_command.gd")
const LOG_FILE := "res://.godot/pixelkiln/daemon.log"
const RECORD_SECTION := "pixelkiln"
const RECORD_KEY := "daemon_process"
const TAIL_BYTES := 16384
const TAIL_LINES := 25
const LOG_LIMIT_BYTES := 64 * 1024 * 1024
const CHILD_ENVIRONMENT := {"PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}

## Godot's stderr pipe on macOS/Linux closes fd 0 with itself (its unused write end is 0):
## kept until the editor exits, so a freed pipe never closes a descriptor the editor reused.
static var _kept_stderr: Array[FileAccess] = []

## The daemon's process id while it runs (-1 otherwise).
var pid := -1
var executable := ""
var arguments := PackedStringArray()
## Unix time of the start.
var started_unix := 0.0
var stopping := false
## The absolute path of the log file (set by the first start).
var log_path := ""
var _settings = null
var _stdio: FileAccess = null
var _stderr: FileAccess = null
var _log: FileAccess = null
var _kill_at_ms := -1
## This launcher's start: {"pid", "started", "editor_pid"} (persisted too, for the next session).
var _started := {}


func _init(settings = null) -> void:
	_settings = settings


func is_running() -> bool:
	return pid > 0


## A start left by an earlier editor session (or a dock closed in this one), as a sentence, and
## the record cleared; "" when there is none. That daemon had its standard input on the editor
## that started it, so it stopped with it; it is never signalled from here.
func take_previous_note() -> String:
	var record := _record()
	if record.is_empty() or is_running():
		return ""
	_save_record({})
	var when := Time.get_datetime_string_from_unix_time(int(record.get("started", 0)), true)
	return (
		"A daemon started from the editor at " + when + " (pid " + str(record.get("pid", "?"))
		+ ") stopped when that editor or its dock closed (its standard input closed); "
		+ "it is never signalled from here."
	)


## Starts the daemon for the dock's [param url]; "" or why it could not.
## [param configured]: the Executable setting; [param extra]: more arguments for serve.
func start(configured: String, url: String, extra: String) -> String:
	if is_running():
		return "the daemon started from the editor is running already (pid " + str(pid) + ")"
	if not OS.has_method("get_process_exit_code"):  # with execute_with_pipe: 4.3+
		return "starting the daemon from the dock needs Godot 4.3+; run pixelkiln serve in a terminal"
	var command := _command(configured, url, extra)
	if not command["error"].is_empty():
		return command["error"]
	var error := _open_log()
	if not error.is_empty():
		return error
	executable = command["path"]
	arguments = command["args"]
	_log.store_string(
		"# " + Time.get_datetime_string_from_system() + ": " + executable + " "
		+ " ".join(arguments) + "\n"
	)
	var process := _execute(executable, arguments)
	if process.is_empty():
		_close_log()
		return Command.exit_message(-1, "", executable)
	pid = int(process["pid"])
	_stdio = process["stdio"]
	_stderr = process["stderr"]
	started_unix = Time.get_unix_time_from_system()
	stopping = false
	_kill_at_ms = -1
	_started = {"pid": pid, "started": started_unix, "editor_pid": OS.get_process_id()}
	_save_record(_started)
	return ""


## Asks the daemon to stop: its standard input closes (stdout with it: one pipe handle in
## Godot, which the daemon tolerates). [method pump] kills it if it still runs after
## [param grace_s] seconds, and emits [signal exited] once it is gone.
func stop(grace_s: float) -> void:
	if not is_running() or stopping:
		return
	stopping = true
	_kill_at_ms = Time.get_ticks_msec() + int(grace_s * 1000.0)
	_ask_to_stop("stop asked")


## Moves the daemon's output into the log, and notices its exit (call it each frame).
func pump() -> void:
	if not is_running():
		return
	_drain(_stdio)
	_drain(_stderr)
	var code: int = OS.call("get_process_exit_code", pid)  # OS.call: see _execute()
	if code != -1 or not OS.is_process_running(pid):
		_drain(_stderr)
		var asked := stopping
		_note("exited with code " + str(code))
		var tail := log_tail()
		_finish()
		var message := "the daemon stopped (code " + str(code) + ")"
		exited.emit(asked, message if asked else Command.exit_message(code, tail, executable))
	elif _kill_at_ms >= 0 and Time.get_ticks_msec() >= _kill_at_ms:
		_kill_at_ms = -1
		if _still_ours():
			_note("still running after the grace period: killed")
			OS.kill(pid)


## Closes the daemon's standard input without waiting (the dock is going away): the daemon
## stops by itself. Never kills.
func release() -> void:
	if is_running():
		_ask_to_stop("the dock closed")
		_finish()


## The last lines of the log ("" before the first start).
func log_tail() -> String:
	if log_path.is_empty() or not FileAccess.file_exists(log_path):
		return ""
	if _log != null:
		_log.flush()
	var file := FileAccess.open(log_path, FileAccess.READ)
	if file == null:
		return ""
	var size := file.get_length()
	var start := maxi(0, size - TAIL_BYTES)
	file.seek(start)
	var text := file.get_buffer(size - start).get_string_from_utf8()
	return Command.tail_lines(text, TAIL_LINES, start > 0)


## {"path", "args", "error"}: what to run for the dock's URL, or why not.
static func _command(configured: String, url: String, extra: String) -> Dictionary:
	var os_name := OS.get_name()
	var port := Command.local_port(url)
	if not port["error"].is_empty():
		return {"error": port["error"]}
	var found := Command.resolve(configured, ProjectSettings.globalize_path("res://"), os_name)
	if not found["error"].is_empty():
		return {"error": found["error"]}
	var built := Command.serve_arguments(port["port"], extra, os_name)
	return {"path": found["path"], "args": built["args"], "error": built["error"]}


## Closes the daemon's standard input (its stdout with it: one pipe handle in Godot, which the
## daemon tolerates), and on macOS/Linux sends SIGTERM to it.
func _ask_to_stop(why: String) -> void:
	_drain(_stdio)
	if _stdio != null:
		_stdio.close()
	_stdio = null
	_note(why + ": standard input closed")
	if OS.get_name() != "Windows" and _still_ours():
		var told := OS.execute("kill", PackedStringArray(["-TERM", str(pid)]))
		_note("SIGTERM sent" if told == 0 else "kill -TERM failed (" + str(told) + ")")


## This launcher started [member pid] in this editor, and it still runs.
func _still_ours() -> bool:
	return Command.is_ours(_started, pid, OS.get_process_id()) and OS.is_process_running(pid)


func _execute(path: String, args: PackedStringArray) -> Dictionary:
	var saved := {}
	for name in CHILD_ENVIRONMENT:
		saved[name] = OS.get_environment(name) if OS.has_environment(name) else null
		OS.set_environment(name, CHILD_ENVIRONMENT[name])
	# OS.call: the dock still loads on Godot 4.2, which lacks the method (start() says so).
	var process: Dictionary = OS.call("execute_with_pipe", path, args)
	for name in saved:
		if saved[name] == null:
			OS.unset_environment(name)
		else:
			OS.set_environment(name, saved[name])
	return process


func _open_log() -> String:
	log_path = ProjectSettings.globalize_path(LOG_FILE)
	DirAccess.make_dir_recursive_absolute(log_path.get_base_dir())
	_log = FileAccess.open(log_path, FileAccess.WRITE)
	if _log == null:
		var reason := error_string(FileAccess.get_open_error())
		return "cannot write the daemon's log " + log_path + ": " + reason
	return ""


func _drain(pipe: FileAccess) -> void:
	if pipe == null or _log == null:
		return
	var available := pipe.get_length()
	if available <= 0:
		return
	if _log.get_length() > LOG_LIMIT_BYTES:
		_log.close()
		_log = FileAccess.open(log_path, FileAccess.WRITE)  # start over rather than fill the disk
		if _log == null:
			return
		_log.store_string("# (log restarted at " + str(LOG_LIMIT_BYTES) + " bytes)\n")
	_log.store_buffer(pipe.get_buffer(available))
	_log.flush()  # the file is current for whoever opens it


func _note(text: String) -> void:
	if _log != null:
		_log.store_string("# " + Time.get_datetime_string_from_system() + ": " + text + "\n")


func _finish() -> void:
	if _stdio != null:
		_stdio.close()
	_stdio = null
	if _stderr != null:
		_kept_stderr.append(_stderr)
	_stderr = null
	_close_log()
	pid = -1
	stopping = false
	_kill_at_ms = -1
	_started = {}
	_save_record({})


func _close_log() -> void:
	if _log != null:
		_log.close()
	_log = null


func _record() -> Dictionary:
	if _settings == null:
		return {}
	var value: Variant = _settings.get_project_metadata(RECORD_SECTION, RECORD_KEY, {})
	return value if value is Dictionary else {}


func _save_record(record: Dictionary) -> void:
	if _settings != null:
		_settings.set_project_metadata(RECORD_SECTION, RECORD_KEY, record)
