extends SceneTree
## The addon's PixelKilnClient against a daemon with tokens (and TLS): run by
## tests/clients_gd/test_gdscript_security.py on gdvm.py and in the real Godot 4.6 web build.

const Client = preload("res://addons/pixelkiln/client/pixelkiln_client.gd")
const PK = preload("res://addons/pixelkiln/generated/pixelkiln_v1.gd")

## What happened, for the Python test to check.
var report := {}
## Checks that failed, in words (kept for the harness's common shape).
var problems: Array[String] = []


## With the right settings: status, a generation, and a load that the token's scope refuses.
## Empty [param token] / [param ca_path]: the client falls back to the environment.
func run_allowed(url: String, token: String, ca_path: String) -> Dictionary:
	var client := _client(token, ca_path)
	client.connect_to_daemon(url)
	var status: Client.Job = await client.status().completed
	report["status"] = status.error_code_name
	report["last_error"] = client.last_error
	if status.error_code_name.is_empty():
		report["ready"] = status.response.ready
		var request := PK.GenerateRequestMsg.new()
		request.prompt = "red brick wall"
		request.width = 64
		request.height = 64
		request.steps = 1
		var job: Client.Job = await client.generate(request).completed
		report["generate"] = job.error_code_name
		report["png"] = job.image_bytes(0) if job.is_ok() else PackedByteArray()
		var load: Client.Job = await client.load_model("tiny-random").completed
		report["load"] = load.error_code_name
		report["load_message"] = load.error_message
	client.disconnect_from_daemon()
	return report


## One connection attempt with these settings: the pending call's code and message, and the
## client's state afterwards (a refused token must not be retried).
func run_refused(url: String, token: String, ca_path: String) -> Dictionary:
	var client := _client(token, ca_path)
	var reasons := []
	client.disconnected.connect(_on_disconnected.bind(reasons))
	client.connect_to_daemon(url)
	var status: Client.Job = await client.status().completed
	report["code"] = status.error_code_name
	report["message"] = status.error_message
	report["reasons"] = reasons
	report["state"] = client.get_state()
	report["last_error"] = client.last_error
	client.auto_reconnect = false
	client.disconnect_from_daemon()
	return report


func _on_disconnected(reason: String, into: Array) -> void:
	into.append(reason)


func _client(token: String, ca_path: String) -> Client:
	var client := Client.new()
	client.token = token
	client.tls_ca_path = ca_path
	# Generous: on a loaded CI machine this interpreter took over 5 s (the client's default)
	# for a TLS handshake and the refusal's probe; these tests check codes, not timing.
	client.connect_timeout_ms = 30000
	client.reconnect_min_ms = 200
	return client
