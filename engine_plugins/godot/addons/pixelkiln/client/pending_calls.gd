extends RefCounted
## The calls in flight of a PixelKilnClient: its jobs and live sessions by request id, the
## answers that settle them, and the failures held for the next poll. Methods that emit the
## client-wide signals take the client as [param client] (no reference back: no cycle).

const PK = preload("../generated/pixelkiln_v1.gd")
const Errors = preload("client_errors.gd")
const Job = preload("client_job.gd")
const LiveSession = preload("live_session.gd")

## request id -> Job waiting for its answer
var jobs := {}
## session id -> open LiveSession
var lives := {}
var _deferred: Array = []


## Failures found inside a call are reported on the next poll, never inside the call, so the
## caller can always connect to (or await) the job's signals first.
func defer(call: RefCounted, code: int, code_name: String, message: String) -> void:
	_deferred.append([call, code, code_name, message])


func run_deferred(client: Object) -> void:
	var due := _deferred
	_deferred = []
	for item in due:
		if item[0] is Job:
			complete(client, item[0], null, item[1], item[2], item[3])
		else:
			close_live(client, item[0], item[2], item[3])


func dispatch(client: Object, envelope: PK.EnvelopeMsg) -> void:
	var rid := envelope.request_id
	var body := envelope.get_body_case()
	if body == PK.EnvelopeMsg.BodyCase.EVENT:
		_on_event(client, rid, envelope.event)
	elif body == PK.EnvelopeMsg.BodyCase.LIVE_FRAME:
		_on_live_frame(client, rid, envelope.live_frame)
	elif body == PK.EnvelopeMsg.BodyCase.LIVE_END:
		if lives.has(rid):
			close_live(client, lives[rid], "", "")
	elif body == PK.EnvelopeMsg.BodyCase.ERROR:
		_on_error(client, rid, envelope.error)
	elif jobs.has(rid):
		complete(client, jobs[rid], _response_of(envelope), 0, "", "")


## Settles a job: the client-wide signal first, the job's own [signal Job.completed] last, so
## whoever awaits the job finds every other effect done.
func complete(
	client: Object, job: Job, answer: RefCounted, code: int, code_name: String, message: String
) -> void:
	jobs.erase(job.request_id)
	if not job.settle(answer, code, code_name, message):
		return
	if not code_name.is_empty():
		client.failed.emit(job.request_id, code_name, message)
	elif job.result != null:
		client.result.emit(job.request_id, job.result.images)
	job.completed.emit(job)


func close_live(client: Object, session: LiveSession, code_name: String, message: String) -> void:
	lives.erase(session.session_id)
	if not session.settle(code_name, message):
		return
	if not code_name.is_empty():
		client.failed.emit(session.session_id, code_name, message)
	session.ended.emit(code_name, message)


func check_deadlines(client: Object, now: int, timeout_ms: int) -> void:
	for rid in jobs.keys():
		var job: Job = jobs[rid]
		if job.deadline_ms > 0 and now > job.deadline_ms:
			var msg := "no answer within " + str(timeout_ms) + " ms"
			complete(client, job, null, Errors.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", msg)


func fail_all(client: Object, code: int, code_name: String, message: String) -> void:
	var failing_jobs := jobs
	var failing_lives := lives
	jobs = {}
	lives = {}
	for rid in failing_jobs:
		complete(client, failing_jobs[rid], null, code, code_name, message)
	for rid in failing_lives:
		close_live(client, failing_lives[rid], code_name, message)


func _response_of(envelope: PK.EnvelopeMsg) -> RefCounted:
	var body := envelope.get_body_case()
	if body == PK.EnvelopeMsg.BodyCase.CANCEL_RESPONSE:
		return envelope.cancel_response
	if body == PK.EnvelopeMsg.BodyCase.LIST_MODELS_RESPONSE:
		return envelope.list_models_response
	if body == PK.EnvelopeMsg.BodyCase.STATUS_RESPONSE:
		return envelope.status_response
	if body == PK.EnvelopeMsg.BodyCase.MODEL_INFO:
		return envelope.model_info
	return envelope.unload_model_response


func _on_event(client: Object, rid: String, event: PK.GenerateEventMsg) -> void:
	if not jobs.has(rid):
		return
	var job: Job = jobs[rid]
	if event.accepted != null:
		job.seed = event.accepted.seed
		job.server_request_id = event.accepted.request_id
		job.accepted.emit(job.seed)
		client.accepted.emit(rid, job.seed)
	elif event.queued != null:
		job.queued.emit(event.queued.position, event.queued.queue_depth)
		client.queued.emit(rid, event.queued.position, event.queued.queue_depth)
	elif event.progress != null:
		job.step = event.progress.step
		job.total = event.progress.total
		job.progress.emit(job.step, job.total)
		client.progress.emit(rid, job.step, job.total)
	elif event.preview != null and not event.preview.images.is_empty():
		var bytes: PackedByteArray = event.preview.images[0].data
		job.preview.emit(bytes)
		client.preview.emit(rid, bytes)
	elif event.result != null:
		complete(client, job, event.result, 0, "", "")


func _on_live_frame(client: Object, rid: String, frame: PK.LiveFrameMsg) -> void:
	if not lives.has(rid):
		return
	var session: LiveSession = lives[rid]
	var bytes := PackedByteArray() if frame.image == null else frame.image.data
	session.frames += 1
	session.record(frame)
	client.live_frame.emit(rid, frame.seq, bytes, frame.timings)
	session.frame.emit(frame.seq, bytes, frame)


func _on_error(client: Object, rid: String, error: PK.ErrorMsg) -> void:
	if jobs.has(rid):
		complete(client, jobs[rid], null, error.code, error.code_name, error.message)
	elif lives.has(rid):
		close_live(client, lives[rid], error.code_name, error.message)
	else:
		if rid.is_empty():
			push_warning("PixelKiln: the daemon rejected a frame: " + error.message)
		client.failed.emit(rid, error.code_name, error.message)
