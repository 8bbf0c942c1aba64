extends RefCounted
## A live img2img session: send frames at any rate; the daemon answers the newest.
## [code]PixelKilnClient.LiveSession[/code], made by [method PixelKilnClient.start_live].

## The daemon answered input [param seq] ([param image_bytes] empty when unchanged);
## [param message] is the LiveFrameMsg (seed, skipped, timings).
signal frame(seq: int, image_bytes: PackedByteArray, message: RefCounted)
## The session is over: [param code_name] is empty after [method end], else the failure.
signal ended(code_name: String, message: String)

const PK = preload("../generated/pixelkiln_v1.gd")

var session_id := ""
var active := true
var last_seq := 0
var frames := 0
var error_code_name := ""
var error_message := ""
## What the daemon applied to the latest frame (asked for in the settings and supported by the
## model's backend): stream batch, the tiny autoencoder.
var stream_batch := false
var tiny_autoencoder := false
## Inputs answered with a [code]similar[/code] frame (skipped as close to the last processed).
var similar_frames := 0
var _settings: PK.LiveSettingsMsg = null
var _send: Callable


func _init(id: String, settings: PK.LiveSettingsMsg, send_call: Callable) -> void:
	session_id = id
	_settings = settings
	_send = send_call

## Sends one input (an encoded image, or null to keep the last one) with optional setting
## changes; returns its seq, or -1 when it could not be sent (see [signal ended]).
func send_image(image: PK.ImageMsg, settings: PK.LiveSettingsMsg = null) -> int:
	if not active:
		return -1
	var input := PK.LiveInputMsg.new()
	last_seq += 1
	input.seq = last_seq
	input.image = image
	input.settings = settings if settings != null else _settings
	_settings = null
	var envelope := PK.EnvelopeMsg.new()
	envelope.live_input = input
	return last_seq if _send.call(self, envelope) else -1

## Sends tightly packed RGBA8 pixels (e.g. [code]Image.get_data()[/code] after
## [code]convert(Image.FORMAT_RGBA8)[/code]): no encoding cost on the main thread.
func send_rgba8(
	pixels: PackedByteArray, width: int, height: int, settings: PK.LiveSettingsMsg = null
) -> int:
	var image := PK.ImageMsg.new()
	image.data = pixels
	image.encoding = PK.Encoding.ENCODING_RAW_RGBA8
	image.width = width
	image.height = height
	return send_image(image, settings)

## Ends the session: the daemon answers what is in flight, then [signal ended] follows.
func end() -> void:
	if active:
		var envelope := PK.EnvelopeMsg.new()
		envelope.live_end = PK.LiveEndMsg.new()
		_send.call(self, envelope)

## Records what a frame reports (the client calls it before [signal frame]).
func record(message: PK.LiveFrameMsg) -> void:
	stream_batch = message.stream_batch
	tiny_autoencoder = message.tiny_autoencoder
	if message.similar:
		similar_frames += 1

## Records the end (the client calls it); false when the session had ended already.
func settle(code_name: String, message: String) -> bool:
	if not active:
		return false
	active = false
	error_code_name = code_name
	error_message = message
	return true
