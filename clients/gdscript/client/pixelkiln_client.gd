@tool
class_name PixelKilnClient
extends RefCounted
## A PixelKiln client for Godot 4: the daemon's WebSocket carrier over [WebSocketPeer].
##
## Every binary frame is one [code]pixelkiln.v1.Envelope[/code] (see
## [code]proto/pixelkiln/v1/envelope.proto[/code]). The client never blocks: the socket is polled
## once per frame ([signal SceneTree.process_frame] by default, or call [method poll] yourself
## with [code]auto_poll = false[/code]), and everything arrives as signals.
##
## [codeblock]
## const PK = preload("res://addons/pixelkiln/generated/pixelkiln_v1.gd")
## var client := PixelKilnClient.new()
##
## func _ready() -> void:
##     client.disconnected.connect(func(reason: String) -> void: push_warning(reason))
##     client.connect_to_daemon("ws://127.0.0.1:50052/v1")
##     await client.connected
##     var request := PK.GenerateRequestMsg.new()
##     request.prompt = "mossy cobblestone"
##     request.width = 512
##     request.height = 512
##     var job := client.generate(request)
##     job.progress.connect(func(step: int, total: int) -> void: print(step, "/", total))
##     await job.completed
##     if job.is_ok():
##         var texture := ImageTexture.create_from_image(PixelKilnClient.decode(job.image_bytes(0)))
##     else:
##         push_error(job.error_code_name + ": " + job.error_message)
## [/codeblock]
##
## Each call returns a [PixelKilnClient.Job] (or a [PixelKilnClient.LiveSession]) right away;
## it never completes inside the call that made it, so [code]await job.completed[/code] on the
## next line is always safe. Later, use [code]await job.wait()[/code], which also returns at
## once when the job is already done. The client-wide signals ([signal progress],
## [signal result], [signal failed], ...) carry the request id for code that watches all jobs.
##
## Connection loss fails every pending job with [code]UNAVAILABLE[/code] and, with
## [member auto_reconnect], retries with exponential backoff ([member reconnect_min_ms] up to
## [member reconnect_max_ms]); [signal disconnected] says what went wrong and what to check.
##
## A daemon on a studio network ([code]pixelkiln serve --token-file ... --tls-cert ...[/code])
## wants [member token] and a [code]wss://[/code] URL, with [member tls_ca_path] when its
## certificate is signed by the studio's own CA. A refused token ends the attempt with
## [code]UNAUTHENTICATED[/code] (no retry: it cannot succeed until the token changes).

## The connection is open (the first time and after each reconnect).
signal connected
## The connection closed or an attempt failed; [param reason] says why and what to check.
signal disconnected(reason: String)
## The daemon validated a generation; [param seed] is the seed of its first image.
@warning_ignore("shadowed_global_identifier")
signal accepted(request_id: String, seed: int)
## A generation waits in the daemon's queue ([param position] 0 runs next).
signal queued(request_id: String, position: int, queue_depth: int)
## A denoising step finished.
signal progress(request_id: String, step: int, total: int)
## A step preview (JPEG by default) of the request's first image.
signal preview(request_id: String, image_bytes: PackedByteArray)
## A generation finished: [param images] is an Array of [code]GeneratedImageMsg[/code].
signal result(request_id: String, images: Array)
## A call failed: gRPC status name ([code]INVALID_ARGUMENT[/code], [code]CANCELLED[/code],
## [code]UNAVAILABLE[/code], ...) and the daemon's message, which names the field.
signal failed(request_id: String, code_name: String, message: String)
## A live session answered input [param seq]; [param image_bytes] is empty when the input was
## unchanged. [param timings] is a [code]LiveTimingsMsg[/code].
signal live_frame(session_id: String, seq: int, image_bytes: PackedByteArray, timings: RefCounted)

enum State { DISCONNECTED, CONNECTING, CONNECTED, WAITING_TO_RECONNECT }

const PK = preload("../generated/pixelkiln_v1.gd")
const HandshakeProbe = preload("handshake_probe.gd")
const Errors = preload("client_errors.gd")
const PendingCalls = preload("pending_calls.gd")
const Job = preload("client_job.gd")
const LiveSession = preload("live_session.gd")
const DEFAULT_URL := "ws://127.0.0.1:50052/v1"
## The daemon's default frame limit (65 MiB: a 4096x4096 RGBA8 image and its envelope).
const DEFAULT_BUFFER_BYTES := 65 * 1024 * 1024
const MAX_QUEUED_PACKETS := 4096
## gRPC status codes used by the client itself.
const CANCELLED := Errors.CANCELLED
const INVALID_ARGUMENT := Errors.INVALID_ARGUMENT
const PERMISSION_DENIED := Errors.PERMISSION_DENIED
const UNAUTHENTICATED := Errors.UNAUTHENTICATED
const DEADLINE_EXCEEDED := Errors.DEADLINE_EXCEEDED
const RESOURCE_EXHAUSTED := Errors.RESOURCE_EXHAUSTED
const UNAVAILABLE := Errors.UNAVAILABLE

## Size of both WebSocket buffers, applied when a connection opens: at least the daemon's
## frame limit ([code]--max-message-mib[/code]; [code]status().response.max_message_bytes[/code]).
## Godot's default of 64 KiB cannot hold one result image: the peer would close with 1009.
var buffer_bytes := DEFAULT_BUFFER_BYTES
## Reconnect after a lost connection or a failed attempt.
var auto_reconnect := true
var reconnect_min_ms := 500
var reconnect_max_ms := 8000
## How long the TCP connect and WebSocket handshake may take.
var connect_timeout_ms := 5000
## Deadline of the one-answer calls (cancel, models, status); 0: none. Generations have none.
var request_timeout_ms := 30000
## The daemon's URL (set by [method connect_to_daemon]).
var url := DEFAULT_URL
## The daemon's token ([code]pixelkiln token create NAME[/code]), sent as
## [code]Authorization: Bearer[/code] on the WebSocket handshake. Empty: the
## [code]PIXELKILN_TOKEN[/code] environment variable. Web exports cannot send it: browsers add no
## custom handshake headers.
var token := ""
## For [code]wss://[/code]: the PEM file of the CA that signed the daemon's certificate
## ([code]--tls-cert[/code]); only certificates it signed are trusted. Empty: the
## [code]PIXELKILN_TLS_CA[/code] environment variable, else Godot's trusted CAs. Ignored on the
## web (the browser checks the certificate).
var tls_ca_path := ""
## Why the last connection attempt or connection failed; empty while all is well.
var last_error := ""

var _peer: WebSocketPeer = null
var _state: State = State.DISCONNECTED
var _calls := PendingCalls.new()
var _outbox: Array[PackedByteArray] = []
var _next_id := 0
var _backoff_ms := 0
var _retry_at_ms := 0
var _connect_deadline_ms := 0
var _open_error := ""
var _open_code := 0
var _tls: TLSOptions = null
var _probe: HandshakeProbe = null
var _probe_reason := ""


## With [param auto_poll] (the default) the client polls itself on every
## [signal SceneTree.process_frame]; otherwise call [method poll] once per frame.
func _init(auto_poll := true) -> void:
	if auto_poll:
		var tree := Engine.get_main_loop() as SceneTree
		if tree != null:
			tree.process_frame.connect(poll)


## Connects to [param daemon_url] (default [code]ws://127.0.0.1:50052/v1[/code]); returns at
## once. [signal connected] or [signal disconnected] follows from [method poll]. Calls made
## while connecting are sent when the connection opens.
func connect_to_daemon(daemon_url := DEFAULT_URL) -> Error:
	if _state != State.DISCONNECTED:
		_close_peer()
		_calls.fail_all(self, UNAVAILABLE, "UNAVAILABLE", "reconnecting to " + daemon_url)
	if not (daemon_url.begins_with("ws://") or daemon_url.begins_with("wss://")):
		last_error = "not a WebSocket URL: " + daemon_url + " (expected ws://HOST:PORT/v1)"
		_state = State.DISCONNECTED
		return ERR_INVALID_PARAMETER
	url = daemon_url
	_backoff_ms = 0
	return _open()


## Closes the connection and stops reconnecting; pending jobs fail with CANCELLED.
func disconnect_from_daemon() -> void:
	var was_down := _state == State.DISCONNECTED
	_close_peer()
	_state = State.DISCONNECTED
	_calls.fail_all(self, CANCELLED, "CANCELLED", "the client disconnected")
	if not was_down:
		disconnected.emit("closed by the client")


func get_state() -> State:
	return _state


func is_daemon_connected() -> bool:
	return _state == State.CONNECTED


## Starts a generation. The job's signals (and the client-wide ones) report its events;
## [code]await job.completed[/code] ends with [member Job.result] or an error.
func generate(request: PK.GenerateRequestMsg) -> Job:
	var job := _new_job("g")
	var envelope := PK.EnvelopeMsg.new()
	envelope.generate = request
	_submit(job, envelope, 0)
	return job


## Cancels the generation [param request_id] (a [member Job.request_id]). A running job stops
## at its next step and fails with CANCELLED. The returned job's
## [code]response.cancelled[/code] is false when nothing was running under that id.
func cancel(request_id: String) -> Job:
	var job := _new_job("c")
	var envelope := PK.EnvelopeMsg.new()
	envelope.cancel = PK.CancelRequestMsg.new()
	envelope.cancel.request_id = request_id
	_submit(job, envelope, request_timeout_ms)
	return job


## The model catalogue: [code]job.response[/code] is a [code]ListModelsResponseMsg[/code].
func list_models() -> Job:
	var job := _new_job("m")
	var envelope := PK.EnvelopeMsg.new()
	envelope.list_models = PK.ListModelsRequestMsg.new()
	_submit(job, envelope, request_timeout_ms)
	return job


## Device, memory, queue: [code]job.response[/code] is a [code]StatusResponseMsg[/code].
func status() -> Job:
	var job := _new_job("s")
	var envelope := PK.EnvelopeMsg.new()
	envelope.status = PK.StatusRequestMsg.new()
	_submit(job, envelope, request_timeout_ms)
	return job


## Loads a model (catalogue name, hub id, folder or file); [code]job.response[/code] is a
## [code]ModelInfoMsg[/code]. Loading can take minutes: this call has no deadline.
func load_model(model_name: String) -> Job:
	var job := _new_job("l")
	var envelope := PK.EnvelopeMsg.new()
	envelope.load_model = PK.LoadModelRequestMsg.new()
	envelope.load_model.name = model_name
	_submit(job, envelope, 0)
	return job


func unload_model(model_name: String) -> Job:
	var job := _new_job("u")
	var envelope := PK.EnvelopeMsg.new()
	envelope.unload_model = PK.UnloadModelRequestMsg.new()
	envelope.unload_model.name = model_name
	_submit(job, envelope, request_timeout_ms)
	return job


## Opens a live img2img session. Nothing is sent until the first
## [method LiveSession.send_image]; [param settings] go with that first input.
func start_live(settings: PK.LiveSettingsMsg = null) -> LiveSession:
	_next_id += 1
	var session := LiveSession.new("live" + str(_next_id), settings, _send_live)
	_calls.lives[session.session_id] = session
	return session


## Decodes PNG, JPEG or WEBP bytes (results, previews, live frames) into an [Image]; null
## when they are none of these or cannot be decoded. Raw RGBA8 needs its size:
## [code]Image.create_from_data(w, h, false, Image.FORMAT_RGBA8, bytes)[/code].
static func decode(image_bytes: PackedByteArray) -> Image:
	if image_bytes.size() < 12:
		return null
	var image := Image.new()
	var err := ERR_FILE_UNRECOGNIZED
	if image_bytes[0] == 0x89 and image_bytes[1] == 0x50:  # \x89PNG
		err = image.load_png_from_buffer(image_bytes)
	elif image_bytes[0] == 0xFF and image_bytes[1] == 0xD8:  # JPEG SOI
		err = image.load_jpg_from_buffer(image_bytes)
	elif image_bytes.slice(8, 12).get_string_from_ascii() == "WEBP":  # RIFF....WEBP
		err = image.load_webp_from_buffer(image_bytes)
	return image if err == OK else null


## Decodes an [code]ImageMsg[/code] (a result, preview or live frame's [code]image[/code]): raw
## RGBA8 by its width and height, else as [method decode] does; null when it cannot.
static func decode_image(image: PK.ImageMsg) -> Image:
	if image == null or image.data.is_empty():
		return null
	if image.encoding != PK.Encoding.ENCODING_RAW_RGBA8:
		return decode(image.data)
	if image.width <= 0 or image.height <= 0 or image.data.size() != image.width * image.height * 4:
		return null
	return Image.create_from_data(image.width, image.height, false, Image.FORMAT_RGBA8, image.data)


## Reads the socket and emits what arrived; connects, times out and reconnects. Called every
## frame by default (see [method _init]); cheap when idle.
func poll() -> void:
	_calls.run_deferred(self)
	var now := Time.get_ticks_msec()
	if _state == State.WAITING_TO_RECONNECT and now >= _retry_at_ms:
		_open()
	if _probe != null:
		if not _probe.step() and now <= _connect_deadline_ms:
			return
		_after_probe()
		return
	if _state == State.CONNECTING and _peer == null:
		if _open_code != 0:
			_refuse(_open_code, "INVALID_ARGUMENT", _open_error)
		else:
			_lost(_open_error)
	if _peer == null:
		return
	_peer.poll()
	var ready := _peer.get_ready_state()
	if ready == WebSocketPeer.STATE_CONNECTING:
		if now > _connect_deadline_ms:
			_lost("no answer from " + url + " within " + str(connect_timeout_ms) + " ms")
		return
	if ready == WebSocketPeer.STATE_OPEN:
		if _state == State.CONNECTING:
			_on_open()
		while _peer != null and _peer.get_available_packet_count() > 0:
			var data := _peer.get_packet()
			if _peer.was_string_packet():
				push_warning("PixelKiln: ignored a text frame from the daemon")
			else:
				_dispatch(data)
		_calls.check_deadlines(self, now, request_timeout_ms)
		return
	if ready == WebSocketPeer.STATE_CLOSED:
		if _state == State.CONNECTING and _peer.get_close_code() == -1 and not OS.has_feature("web"):
			# Refused by HTTP status (token, Origin) or by TLS? Ask once, then report.
			_probe_reason = _close_reason()
			_probe = HandshakeProbe.new(url, _peer.handshake_headers, _tls)
			_peer = null
			_connect_deadline_ms = now + connect_timeout_ms
			return
		_lost(_close_reason())


# ---- connection ------------------------------------------------------------------------


func _open() -> Error:
	_peer = WebSocketPeer.new()
	# Before connect_to_url: the buffers are allocated with the connection.
	_peer.inbound_buffer_size = buffer_bytes
	_peer.outbound_buffer_size = buffer_bytes
	_peer.max_queued_packets = MAX_QUEUED_PACKETS
	_state = State.CONNECTING
	_connect_deadline_ms = Time.get_ticks_msec() + connect_timeout_ms
	_open_code = 0
	var bearer := _setting(token, "PIXELKILN_TOKEN")
	if bearer.contains(" ") or bearer.contains("\n"):
		return _bad_setting("token: a token has no spaces or line breaks (copy the pk_... value)")
	if not bearer.is_empty():
		_peer.handshake_headers = PackedStringArray(["Authorization: Bearer " + bearer])
	_tls = null
	var ca_path := _setting(tls_ca_path, "PIXELKILN_TLS_CA")
	if url.begins_with("wss://") and not ca_path.is_empty():
		var ca := X509Certificate.new()
		var loaded := ca.load(ca_path)
		if loaded != OK:
			return _bad_setting(Errors.bad_ca(ca_path, loaded))
		_tls = TLSOptions.client(ca)
	var err := _peer.connect_to_url(url, _tls)
	if err != OK:  # reported by the next poll(), like any other failed attempt
		_peer = null
		_open_error = "cannot open a WebSocket to " + url + ": " + error_string(err)
	return err


func _bad_setting(message: String) -> Error:
	_peer = null
	_open_error = message
	_open_code = INVALID_ARGUMENT
	return ERR_INVALID_PARAMETER


static func _setting(value: String, environment_variable: String) -> String:
	if not value.strip_edges().is_empty():
		return value.strip_edges()
	return OS.get_environment(environment_variable).strip_edges()


func _after_probe() -> void:
	var probe := _probe
	_probe = null
	var has_token := not _setting(token, "PIXELKILN_TOKEN").is_empty()
	var refusal := Errors.probe_refusal(probe, has_token)
	if refusal.is_empty():
		_lost(Errors.probe_lost(probe, url, _probe_reason))
	else:
		_refuse(refusal[0], refusal[1], refusal[2])


## A refusal that retrying cannot fix: fail everything, stay disconnected.
func _refuse(code: int, code_name: String, reason: String) -> void:
	_close_peer()
	last_error = code_name + ": " + reason
	_state = State.DISCONNECTED
	_calls.fail_all(self, code, code_name, reason)
	disconnected.emit(last_error)


func _on_open() -> void:
	_state = State.CONNECTED
	_backoff_ms = 0
	last_error = ""
	var pending := _outbox
	_outbox = []
	for data in pending:
		_peer.send(data, WebSocketPeer.WRITE_MODE_BINARY)
	connected.emit()


func _close_reason() -> String:
	var connecting := _state == State.CONNECTING
	var code := _peer.get_close_code()
	return Errors.close_reason(code, _peer.get_close_reason(), connecting, url, buffer_bytes)


func _lost(reason: String) -> void:
	_close_peer()
	last_error = reason
	_calls.fail_all(self, UNAVAILABLE, "UNAVAILABLE", reason)
	if auto_reconnect:
		_backoff_ms = reconnect_min_ms if _backoff_ms == 0 else mini(_backoff_ms * 2, reconnect_max_ms)
		_retry_at_ms = Time.get_ticks_msec() + _backoff_ms
		_state = State.WAITING_TO_RECONNECT
		reason += "; retrying in " + str(_backoff_ms) + " ms"
	else:
		_state = State.DISCONNECTED
	disconnected.emit(reason)


func _close_peer() -> void:
	if _peer != null and _peer.get_ready_state() != WebSocketPeer.STATE_CLOSED:
		_peer.close(1000, "client closing")
	_peer = null
	_probe = null
	_outbox = []


# ---- sending and receiving -------------------------------------------------------------


func _new_job(prefix: String) -> Job:
	_next_id += 1
	return Job.new(prefix + str(_next_id), cancel)


func _submit(job: Job, envelope: PK.EnvelopeMsg, timeout_ms: int) -> void:
	envelope.request_id = job.request_id
	var problem := _send(envelope.to_bytes())
	if not problem.is_empty():
		_calls.defer(job, problem[0], problem[1], problem[2])
		return
	if timeout_ms > 0:
		job.deadline_ms = Time.get_ticks_msec() + timeout_ms
	_calls.jobs[job.request_id] = job


func _send_live(session: LiveSession, envelope: PK.EnvelopeMsg) -> bool:
	envelope.request_id = session.session_id
	if envelope.live_end != null and session.last_seq == 0:  # nothing was sent: end here
		_calls.lives.erase(session.session_id)
		_calls.defer(session, 0, "", "")
		return true
	var problem := _send(envelope.to_bytes())
	if problem.is_empty():
		return true
	if problem[0] == UNAVAILABLE:
		_calls.lives.erase(session.session_id)
		_calls.defer(session, problem[0], problem[1], problem[2])
	return false


## Sends now, or queues while connecting; returns [] or [code, code_name, message].
func _send(data: PackedByteArray) -> Array:
	if data.size() > buffer_bytes:
		return Errors.frame_too_big(data.size(), buffer_bytes)
	if _state == State.CONNECTING:
		_outbox.append(data)
		return []
	if _state != State.CONNECTED:
		return Errors.not_connected(last_error)
	var err := _peer.send(data, WebSocketPeer.WRITE_MODE_BINARY)
	if err != OK:
		var msg := "send failed (" + error_string(err) + "): outbound buffer full"
		return [RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", msg]
	return []


func _dispatch(data: PackedByteArray) -> void:
	var envelope := PK.EnvelopeMsg.from_bytes(data)
	if envelope == null:
		push_warning("PixelKiln: ignored a malformed frame of " + str(data.size()) + " bytes")
		return
	_calls.dispatch(self, envelope)
