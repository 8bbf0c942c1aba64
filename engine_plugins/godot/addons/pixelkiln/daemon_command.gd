@tool
extends RefCounted
## The daemon's command line on every OS, as plain functions: which [code]pixelkiln[/code] to
## run, its arguments, the port of the dock's URL, and the tail of its log. No editor classes and
## no processes, so tests/clients_gd runs it on the interpreter and in the real Godot 4.6 web
## build; daemon_launcher.gd starts what it builds. [param os_name] is [method OS.get_name]
## ("Windows", "macOS", "Linux", ...).

const NAME := "pixelkiln"
const DEFAULT_WS_PORT := 50052
const SEARCH_LEVELS := 8
const LOOPBACK := ["127.0.0.1", "localhost", "::1"]
## Godot's Windows command line wraps an argument in double quotes when it holds one of these
## (OS_Windows::_quote_command_line_argument) and escapes nothing.
const WINDOWS_QUOTED := " &()[]{}^=;!'+,`~"
const EXAMPLES := "<checkout>/.venv/bin/pixelkiln or <checkout>\\.venv\\Scripts\\pixelkiln.exe"


## Where pixelkiln sits in the virtual environment [param venv], this OS's layout first.
static func candidates(venv: String, os_name: String) -> PackedStringArray:
	var base := _slashes(venv)
	while base.length() > 1 and base.ends_with("/"):
		base = base.substr(0, base.length() - 1)
	var windows := base + "/Scripts/" + NAME + ".exe"
	var posix := base + "/bin/" + NAME
	if os_name == "Windows":
		return PackedStringArray([windows, posix])
	return PackedStringArray([posix, windows])


## {"path": String, "error": String} for Editor Settings > PixelKiln > Daemon > Executable:
## a file as given (".exe" added on Windows when missing); a folder (a virtual environment, or a
## checkout or project holding one in .venv) searched with candidates(); empty or a bare name:
## the nearest .venv in [param project_dir] or a folder above it (up to [constant SEARCH_LEVELS]
## folders: a project inside a PixelKiln checkout), else the name itself, for the OS to find on
## PATH. [param project_dir] is the
## project's folder as an OS path ([code]ProjectSettings.globalize_path("res://")[/code]).
## A leading [code]~[/code] is the user's home folder ([param home]; by default HOME, or
## USERPROFILE on Windows): Godot's file functions do not expand it.
static func resolve(
	configured: String, project_dir: String, os_name: String, home := "<environment>"
) -> Dictionary:
	if home == "<environment>":
		home = OS.get_environment("USERPROFILE" if os_name == "Windows" else "HOME")
	var value := _slashes(configured.strip_edges().trim_prefix('"').trim_suffix('"'))
	value = expand_home(value, home)
	if value.is_empty():
		value = NAME
	if is_bare(value):
		var folder := _slashes(project_dir)
		for _level in SEARCH_LEVELS:
			if folder.is_empty():
				break
			var found := _first_file(candidates(folder.path_join(".venv"), os_name))
			if not found.is_empty():
				return {"path": found, "error": ""}
			folder = parent_dir(folder)
		return {"path": value, "error": ""}
	if FileAccess.file_exists(value):
		return {"path": value, "error": ""}
	if os_name == "Windows" and FileAccess.file_exists(value + ".exe"):
		return {"path": value + ".exe", "error": ""}
	if DirAccess.dir_exists_absolute(value):
		var looked := candidates(value, os_name)
		looked.append_array(candidates(value.path_join(".venv"), os_name))
		var found := _first_file(looked)
		if not found.is_empty():
			return {"path": found, "error": ""}
		var listed := ", ".join(looked)
		return {"path": "", "error": "no pixelkiln in '" + value + "' (looked for " + listed + ")"}
	return {
		"path": "",
		"error": "'" + value + "' does not exist. Set the pixelkiln executable, for example " + EXAMPLES,
	}


## [param path] with a leading "~" ("~", "~/x", "~\\x") replaced by [param home]; other paths
## (and "~user/x", or any path when [param home] is empty) unchanged.
static func expand_home(path: String, home: String) -> String:
	if home.is_empty() or not (path == "~" or path.begins_with("~/") or path.begins_with("~\\")):
		return path
	var base := _slashes(home)
	while base.length() > 1 and base.ends_with("/"):
		base = base.substr(0, base.length() - 1)
	return base + _slashes(path.substr(1))


## True for a name without a folder ("pixelkiln"), which the OS looks for on PATH.
static func is_bare(value: String) -> bool:
	return not ("/" in value or "\\" in value or ":" in value)


## The folder holding [param path] ("" for a root or a bare name).
static func parent_dir(path: String) -> String:
	var clean := _slashes(path)
	while clean.length() > 1 and clean.ends_with("/"):
		clean = clean.substr(0, clean.length() - 1)
	var cut := clean.rfind("/")
	if cut < 0 or clean == "/" or (cut == 2 and clean.substr(1, 1) == ":" and clean.length() == 3):
		return ""
	if cut == 0:
		return "/"
	if cut == 2 and clean.substr(1, 1) == ":":
		return clean.substr(0, 3)  # C:/
	return clean.substr(0, cut)


## {"port": int, "error": String}: the WebSocket port of [param url] when it names this
## machine; the dock starts a daemon here only.
static func local_port(url: String) -> Dictionary:
	var rest := url.strip_edges()
	var scheme_end := rest.find("://")
	if scheme_end < 0 or not (rest.substr(0, scheme_end).to_lower() in ["ws", "wss"]):
		return {"port": 0, "error": "the daemon URL must start with ws:// (or wss://): " + url}
	rest = rest.substr(scheme_end + 3)
	var slash := rest.find("/")
	var authority := rest if slash < 0 else rest.substr(0, slash)
	var host := authority
	var port_text := ""
	if authority.begins_with("["):
		var close := authority.find("]")
		host = authority.substr(1, close - 1) if close > 0 else authority
		if close > 0 and authority.substr(close + 1, 1) == ":":
			port_text = authority.substr(close + 2)
	elif ":" in authority:
		host = authority.substr(0, authority.find(":"))
		port_text = authority.substr(authority.find(":") + 1)
	if not (host.to_lower() in LOOPBACK):
		return {
			"port": 0,
			"error": (
				"the dock starts a daemon on this machine only, and " + url + " names "
				+ host + ": start it there (pixelkiln serve --host 0.0.0.0 ...)"
			),
		}
	if port_text.is_empty():
		return {"port": DEFAULT_WS_PORT, "error": ""}
	var port := port_text.to_int()
	if str(port) != port_text or port < 1 or port > 65535:
		return {"port": 0, "error": "the daemon URL's port must be 1-65535: " + url}
	return {"port": port, "error": ""}


## {"args": PackedStringArray, "error": String}: [param text] split at spaces and tabs; single
## or double quotes keep spaces inside one argument; a backslash is an ordinary character (a
## Windows path stays as typed).
static func split_arguments(text: String) -> Dictionary:
	var args := PackedStringArray()
	var current := ""
	var quote := ""
	var started := false
	for i in text.length():
		var c := text[i]
		if not quote.is_empty():
			if c == quote:
				quote = ""
			else:
				current += c
		elif c == '"' or c == "'":
			quote = c
			started = true
		elif c == " " or c == "\t" or c == "\n" or c == "\r":
			if started:
				args.append(current)
			current = ""
			started = false
		else:
			current += c
			started = true
	if not quote.is_empty():
		return {"args": PackedStringArray(), "error": "a quote (" + quote + ") is not closed: " + text}
	if started:
		args.append(current)
	return {"args": args, "error": ""}


## {"args": PackedStringArray, "error": String}: [code]serve --ws-port PORT
## --stop-on-stdin-close EXTRA...[/code]. The daemon stops when its standard input closes: when
## the dock stops it, and when the editor exits or dies.
static func serve_arguments(ws_port: int, extra: String, os_name: String) -> Dictionary:
	var split := split_arguments(extra)
	if not split["error"].is_empty():
		return {"args": PackedStringArray(), "error": "extra arguments: " + split["error"]}
	var args := PackedStringArray(["serve", "--ws-port", str(ws_port), "--stop-on-stdin-close"])
	for arg in split["args"]:
		if arg == "--ws-port" or arg.begins_with("--ws-port="):
			return {
				"args": PackedStringArray(),
				"error": "extra arguments: set the WebSocket port in the dock's URL, not --ws-port",
			}
		args.append(arg)
	if os_name == "Windows":
		for arg in args:
			var problem := windows_problem(arg)
			if not problem.is_empty():
				return {"args": PackedStringArray(), "error": "extra arguments: " + problem}
	return {"args": args, "error": ""}


## Why [param arg] would not reach the daemon unchanged through Godot's Windows command line
## ("" when it would): it quotes an argument with a space but escapes nothing, so a double quote,
## an empty argument or a quoted one ending in a backslash (which would escape the closing quote)
## arrive changed. Non-ASCII characters are fine (CreateProcessW takes UTF-16).
static func windows_problem(arg: String) -> String:
	if arg.is_empty():
		return "an empty argument cannot be passed on Windows"
	if '"' in arg:
		return "a double quote cannot be passed on Windows: " + arg
	if "\t" in arg or "\n" in arg:
		return "a tab or line break cannot be passed on Windows: " + arg
	if arg.ends_with("\\") and _quoted_on_windows(arg):
		return "drop the trailing backslash of " + arg + " (it would escape Windows' closing quote)"
	return ""


static func _quoted_on_windows(arg: String) -> bool:
	for i in arg.length():
		if arg[i] in WINDOWS_QUOTED:
			return true
	return false


## The last [param count] lines of [param text] (a log), without a partial first line when
## [param cut] (the text is the end of a longer file).
static func tail_lines(text: String, count: int, cut: bool = false) -> String:
	var lines := text.replace("\r\n", "\n").split("\n")
	if cut and lines.size() > 1:
		lines.remove_at(0)
	while lines.size() > 0 and lines[lines.size() - 1].strip_edges().is_empty():
		lines.remove_at(lines.size() - 1)
	var start := maxi(0, lines.size() - count)
	return "\n".join(lines.slice(start))


## What to tell the user when the daemon exited by itself with [param code], given the tail of
## its log: the launcher's own lines start with "# "; Godot prints "Could not create child
## process" there when the executable did not run.
static func exit_message(code: int, log_tail: String, executable: String) -> String:
	var said := false
	for line in log_tail.split("\n"):
		if not line.strip_edges().is_empty() and not line.begins_with("# "):
			said = true
	if not said or "Could not create child process" in log_tail:
		return (
			"'" + executable + "' could not be started (code " + str(code) + "). Set Editor "
			+ "Settings > PixelKiln > Daemon > Executable, for example " + EXAMPLES
		)
	return "the daemon exited with code " + str(code) + ":\n" + log_tail


## Whether [param pid] is the process of the start [param record] ({"pid", "started",
## "editor_pid"}) made by the editor running now ([param editor_pid]): only that one may be
## signalled. A record of another editor session, or none, never matches.
static func is_ours(record: Dictionary, pid: int, editor_pid: int) -> bool:
	if pid <= 0 or record.is_empty():
		return false
	return int(record.get("pid", -1)) == pid and int(record.get("editor_pid", -1)) == editor_pid


static func _first_file(paths: PackedStringArray) -> String:
	for path in paths:
		if FileAccess.file_exists(path):
			return path
	return ""


static func _slashes(path: String) -> String:
	return path.replace("\\", "/")
