extends SceneTree
## End-to-end run of the addon's PixelKilnClient against a running daemon.
##
## tests/clients_gd/test_gdscript_client.py loads this script on gdvm.py (res:// is
## engine_plugins/godot) and drives run() frame by frame; test_godot_web.py runs it in the real
## Godot 4.6 (its web build: web_main.gd calls it). With a desktop Godot 4:
##   godot --headless --path engine_plugins/godot --script "$PWD/tests/clients_gd/e2e.gd" \
##       -- ws://127.0.0.1:50052/v1
## prints the report and exits 1 when a check failed.

const Client = preload("res://addons/pixelkiln/client/pixelkiln_client.gd")
const PK = preload("res://addons/pixelkiln/generated/pixelkiln_v1.gd")
## Every wait loop of this script ends by then, whatever the peer does.
const LOOP_DEADLINE_MS := 30000
## How long _default_buffer() waits for a result after the job's last step (web: it never comes).
const RESULT_WAIT_MS := 3000

## What happened, for the Python test to check (image bytes included).
var report := {}
## Where run_reconnect() is: "running" (the test kills the daemon), "down" (it starts one).
var stage := ""
## Checks that failed, in words.
var problems: Array[String] = []
var _progress := {}
var _failed := {}
var _live_frames := 0


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	await run(args[0] if args.size() > 0 else Client.DEFAULT_URL)
	for problem in problems:
		printerr(problem)
	print(report.keys(), " problems: ", problems.size())
	quit(1 if problems.size() > 0 else 0)


## Connects, asks for status and models, generates, cancels, runs a live session and hits an
## error; returns [member report].
func run(url: String) -> Dictionary:
	var client := Client.new()
	client.progress.connect(_on_progress)
	client.failed.connect(_on_failed)
	client.live_frame.connect(_on_live_frame)
	_check(client.connect_to_daemon(url) == OK, "connect_to_daemon returns OK")
	await client.connected
	report["connected"] = client.is_daemon_connected()
	await _status_and_models(client)
	await _generate(client)
	await _cancel(client)
	await _live(client)
	await _live_options(client)
	await _errors(client)
	var disconnect_reason := []
	client.disconnected.connect(_on_disconnected.bind(disconnect_reason))
	client.disconnect_from_daemon()
	report["disconnect_reason"] = disconnect_reason
	return report


## Faults without a working daemon behind the URL; returns what each one produced.
func run_faults(closed_url: String, grpc_url: String, path_url: String, url: String) -> Dictionary:
	var out := {}
	var client := Client.new()
	client.auto_reconnect = false
	out["bad_url"] = client.connect_to_daemon("http://127.0.0.1:50052/v1")
	out["bad_url_error"] = client.last_error
	var early := client.status()
	out["early_done_in_call"] = early.done
	await early.completed
	out["early"] = early.error_text()
	out["closed"] = await _failed_attempt(closed_url)
	out["grpc"] = await _failed_attempt(grpc_url)
	out["wrong_path"] = await _failed_attempt(path_url)
	out["default_buffer"] = await _default_buffer(url)
	return out


## The daemon dies during a generation and comes back: the job fails UNAVAILABLE, the client
## reports each failed attempt and reconnects by itself.
func run_reconnect(url: String) -> Dictionary:
	var client := Client.new()
	client.reconnect_min_ms = 200
	client.reconnect_max_ms = 1000
	var reasons := []
	client.disconnected.connect(_on_disconnected.bind(reasons))
	client.connect_to_daemon(url)
	await client.connected
	var request := PK.GenerateRequestMsg.new()
	request.prompt = "slow stone"
	request.width = 256
	request.height = 256
	request.steps = 40
	var job := client.generate(request)
	await job.progress
	stage = "running"
	await job.completed
	stage = "down"
	await client.connected
	var status: Client.Job = await client.status().completed
	client.disconnect_from_daemon()
	return {
		"job": job.error_text(),
		"reasons": reasons,
		"status": status.error_text(),
		"ready": status.response.ready if status.is_ok() else false,
	}


## Servers that never answer: one accepts the WebSocket and ignores every frame (the call's
## deadline), the other accepts TCP and never completes the handshake (the connect timeout).
func run_timeouts(ignoring_url: String, stalled_url: String) -> Dictionary:
	var client := Client.new()
	client.auto_reconnect = false
	client.request_timeout_ms = 300
	client.connect_to_daemon(ignoring_url)
	await client.connected
	var job: Client.Job = await client.status().completed
	client.disconnect_from_daemon()
	var stalled := Client.new()
	stalled.auto_reconnect = false
	stalled.connect_timeout_ms = 300
	stalled.connect_to_daemon(stalled_url)
	var reason: String = await stalled.disconnected
	return {"deadline": job.error_text(), "stalled": reason}


func _failed_attempt(url: String) -> Dictionary:
	var client := Client.new()
	client.auto_reconnect = false
	client.connect_to_daemon(url)
	var job := client.status()
	var reason: String = await client.disconnected
	await job.wait()
	return {"reason": reason, "job": job.error_text(), "state": client.get_state()}


## A bare WebSocketPeer with Godot's default 64 KiB inbound buffer, asking for a 256x256 PNG.
## Native Godot closes with 1009 on the result frame. On the web the peer is the browser's
## WebSocket: the frame is dropped and the connection stays open, so the loop also ends once the
## job's last step has been reported and no result followed within RESULT_WAIT_MS.
func _default_buffer(url: String) -> Dictionary:
	var tree := Engine.get_main_loop() as SceneTree
	var deadline := Time.get_ticks_msec() + LOOP_DEADLINE_MS
	var peer := WebSocketPeer.new()
	peer.connect_to_url(url)
	while peer.get_ready_state() == WebSocketPeer.STATE_CONNECTING:
		if Time.get_ticks_msec() > deadline:
			problems.append("default buffer: no connection within the deadline")
			return {}
		await tree.process_frame
		peer.poll()
	var envelope := PK.EnvelopeMsg.new()
	envelope.request_id = "big"
	envelope.generate = PK.GenerateRequestMsg.new()
	envelope.generate.prompt = "noise"
	envelope.generate.width = 256
	envelope.generate.height = 256
	envelope.generate.steps = 1
	peer.send(envelope.to_bytes(), WebSocketPeer.WRITE_MODE_BINARY)
	var frames := 0
	var results := 0
	var last_step_at := -1
	while peer.get_ready_state() != WebSocketPeer.STATE_CLOSED and results == 0:
		var now := Time.get_ticks_msec()
		if now > deadline or (last_step_at >= 0 and now - last_step_at > RESULT_WAIT_MS):
			break
		await tree.process_frame
		peer.poll()
		var is_open := peer.get_ready_state() == WebSocketPeer.STATE_OPEN
		while is_open and peer.get_available_packet_count() > 0:
			var event := PK.EnvelopeMsg.from_bytes(peer.get_packet()).event
			frames += 1
			if event != null and event.result != null:
				results += 1
			elif event != null and event.progress != null:
				if event.progress.step == event.progress.total:
					last_step_at = Time.get_ticks_msec()
			is_open = peer.get_ready_state() == WebSocketPeer.STATE_OPEN
	var still_open := peer.get_ready_state() == WebSocketPeer.STATE_OPEN
	if still_open:
		peer.close()
	return {
		"code": peer.get_close_code(),
		"reason": peer.get_close_reason(),
		"frames": frames,
		"results": results,
		"last_step_seen": last_step_at >= 0,
		"open": still_open,
	}


func _status_and_models(client: Client) -> void:
	var status: Client.Job = await client.status().completed
	_check(status.is_ok(), "status: " + status.error_text())
	report["ready"] = status.response.ready
	report["max_message_bytes"] = status.response.max_message_bytes
	var models: Client.Job = await client.list_models().completed
	var names := []
	for model in models.response.models:
		names.append(model.name)
	report["models"] = names
	report["default_model"] = models.response.default_model
	var loaded: Client.Job = await client.load_model("tiny-random").completed
	_check(loaded.is_ok(), "load_model: " + loaded.error_text())
	report["load"] = [loaded.response.name, loaded.response.loaded] if loaded.is_ok() else []
	var unloaded: Client.Job = await client.unload_model("no-such-model").completed
	_check(unloaded.is_ok(), "unload_model: " + unloaded.error_text())
	report["unloaded"] = unloaded.response.unloaded if unloaded.is_ok() else null


func _generate(client: Client) -> void:
	var request := PK.GenerateRequestMsg.new()
	request.prompt = "red brick wall"
	request.width = 64
	request.height = 64
	request.steps = 2
	request.seed = 42
	request.preview = PK.PreviewSettingsMsg.new()
	request.preview.every_n_steps = 1
	var job := client.generate(request)
	var previews := []
	job.preview.connect(_on_preview.bind(previews))
	await job.completed
	_check(job.is_ok(), "generate: " + job.error_text())
	report["generate"] = {
		"request_id": job.request_id,
		"seed": job.seed,
		"steps": _progress.get(job.request_id, []),
		"previews": previews.size(),
		"png": job.image_bytes(0),
		"images": job.result.images.size() if job.result != null else 0,
		"recipe_seed": job.result.recipe.request.seed if job.result != null else -1,
	}


func _cancel(client: Client) -> void:
	var request := PK.GenerateRequestMsg.new()
	request.prompt = "slow stone"
	request.width = 256
	request.height = 256
	request.steps = 40
	var job := client.generate(request)
	var first: Array = await job.progress
	var cancel: Client.Job = await job.cancel().completed
	await job.wait()
	report["cancel"] = {
		"first_step": first[0],
		"total": first[1],
		"cancelled": cancel.response.cancelled if cancel.is_ok() else false,
		"code_name": job.error_code_name,
		"message": job.error_message,
		"last_step": job.step,
		"failed_signal": _failed.get(job.request_id, ""),
	}


func _live(client: Client) -> void:
	var settings := PK.LiveSettingsMsg.new()
	settings.prompt = "mossy stone"
	settings.width = 64
	settings.height = 64
	settings.steps = 2
	settings.strength = 0.6
	settings.seed = 3
	settings.output_encoding = PK.Encoding.ENCODING_PNG
	var session := client.start_live(settings)
	var seqs := []
	var images := []
	for shade in [40, 120, 200]:
		var pixels := PackedByteArray()
		pixels.resize(64 * 64 * 4)
		pixels.fill(shade)
		var seq := session.send_rgba8(pixels, 64, 64)
		_check(seq > 0, "live: frame sent")
		var got: Array = await session.frame
		seqs.append(got[0])
		images.append(got[1])
	session.end()
	var ended: Array = await session.ended
	report["live"] = {
		"seqs": seqs,
		"images": images,
		"end_code": ended[0],
		"active": session.active,
		"client_signal_frames": _live_frames,
	}


## Raw RGBA8 frames, similar-skip, and what the daemon says it applied (stream batch and the
## tiny autoencoder: asked for, not supported by tiny-random, so reported off).
func _live_options(client: Client) -> void:
	var settings := PK.LiveSettingsMsg.new()
	settings.prompt = "mossy stone"
	settings.width = 64
	settings.height = 64
	settings.steps = 2
	settings.seed = 3
	settings.output_encoding = PK.Encoding.ENCODING_RAW_RGBA8
	settings.similar_skip_threshold = 0.05
	settings.similar_skip_max = 5
	settings.stream_batch = true
	settings.tiny_autoencoder = true
	var session := client.start_live(settings)
	var frames := []
	for shade in [40, 42, 200]:  # 42 is within 5% of 40: skipped as similar
		var pixels := PackedByteArray()
		pixels.resize(64 * 64 * 4)
		pixels.fill(shade)
		session.send_rgba8(pixels, 64, 64)
		var got: Array = await session.frame
		var frame: PK.LiveFrameMsg = got[2]
		var entry := {
			"seq": frame.seq,
			"bytes": got[1].size(),
			"similar": frame.similar,
			"stream_batch": frame.stream_batch,
			"tiny_autoencoder": frame.tiny_autoencoder,
		}
		if frame.image != null:
			entry["encoding"] = frame.image.encoding
			entry["size"] = [frame.image.width, frame.image.height]
		if OS.has_feature("web") and got[1].size() > 0:  # Image exists in the real engine only
			var image := Client.decode_image(frame.image)
			entry["decoded"] = [image.get_width(), image.get_height()] if image != null else []
			entry["pixel"] = image.get_pixel(0, 0).a8 if image != null else -1
		frames.append(entry)
	report["live_options"] = {
		"frames": frames,
		"similar_frames": session.similar_frames,
		"stream_batch": session.stream_batch,
		"tiny_autoencoder": session.tiny_autoencoder,
	}
	session.end()
	await session.ended


func _errors(client: Client) -> void:
	var bad := PK.GenerateRequestMsg.new()
	bad.prompt = "x"
	bad.width = 100
	var job: Client.Job = await client.generate(bad).completed
	var unknown := PK.GenerateRequestMsg.new()
	unknown.prompt = "x"
	unknown.model = "no-such-model"
	var missing: Client.Job = await client.generate(unknown).completed
	var nothing: Client.Job = await client.cancel("never-started").completed
	var settings := PK.LiveSettingsMsg.new()
	settings.width = 100
	var session := client.start_live(settings)
	var pixels := PackedByteArray()
	pixels.resize(64 * 64 * 4)
	session.send_rgba8(pixels, 64, 64)
	var live_end: Array = await session.ended
	report["errors"] = {
		"live_code": live_end[0],
		"live_message": live_end[1],
		"width_code": job.error_code_name,
		"width_message": job.error_message,
		"width_failed_signal": _failed.get(job.request_id, ""),
		"model_code": missing.error_code_name,
		"cancel_unknown": nothing.response.cancelled,
	}


func _check(ok: bool, what: String) -> void:
	if not ok:
		problems.append(what)


func _on_progress(request_id: String, step: int, _total: int) -> void:
	if not _progress.has(request_id):
		_progress[request_id] = []
	_progress[request_id].append(step)


func _on_failed(request_id: String, code_name: String, _message: String) -> void:
	_failed[request_id] = code_name


func _on_live_frame(_session: String, _seq: int, _bytes: PackedByteArray, _timings) -> void:
	_live_frames += 1


func _on_preview(image_bytes: PackedByteArray, previews: Array) -> void:
	previews.append(image_bytes.size())


func _on_disconnected(reason: String, reasons: Array) -> void:
	reasons.append(reason)
