extends RefCounted
## One call to the daemon: a generation, or a call with one answer (cancel, models, status).
## [code]PixelKilnClient.Job[/code]: the client makes it and settles it.


@warning_ignore("shadowed_global_identifier")
signal accepted(seed: int)
signal queued(position: int, queue_depth: int)
signal progress(step: int, total: int)
signal preview(image_bytes: PackedByteArray)
## The job is done, well or not ([member done] is true): check [method is_ok].
signal completed(job: RefCounted)

const PK = preload("../generated/pixelkiln_v1.gd")

## The id this client gave the call (the envelope's request_id); use it to cancel.
var request_id := ""
## The daemon's own id of a generation (from Accepted).
var server_request_id := ""
var done := false
## Seed of the first image (from Accepted); image i used seed + i.
@warning_ignore("shadowed_global_identifier")
var seed := 0
var step := 0
var total := 0
## A generation's ResultMsg: images (with seeds, maps, seams), recipe, atlas, timings.
var result: PK.ResultMsg = null
## A one-answer call's response message.
var response: RefCounted = null
## gRPC status of a failure (0 and "" on success).
var error_code := 0
var error_code_name := ""
var error_message := ""
var deadline_ms := 0
var _cancel: Callable


func _init(id: String, cancel_call: Callable) -> void:
	request_id = id
	_cancel = cancel_call


func is_ok() -> bool:
	return done and error_code_name.is_empty()

## Waits for the job (returns at once when it is done already): [code]await job.wait()[/code].
func wait() -> RefCounted:
	if not done:
		await completed
	return self

## Asks the daemon to cancel this generation; returns the cancel call's own job.
func cancel() -> RefCounted:
	return _cancel.call(request_id)

## The encoded bytes of result image [param index] (PNG unless the request said otherwise).
func image_bytes(index: int) -> PackedByteArray:
	if result == null or index >= result.images.size():
		return PackedByteArray()
	return result.images[index].image.data

## "CODE_NAME: message" of a failed job, empty otherwise.
func error_text() -> String:
	return "" if error_code_name.is_empty() else error_code_name + ": " + error_message

## Records the outcome (the client calls it); false when the job was done already.
func settle(answer: RefCounted, code: int, code_name: String, message: String) -> bool:
	if done:
		return false
	done = true
	if answer is PK.ResultMsg:
		result = answer
	else:
		response = answer
	error_code = code
	error_code_name = code_name
	error_message = message
	return true
