extends RefCounted
## The gRPC status codes the client uses itself, and the words of its connection failures:
## what went wrong and what to check. Static functions only (see pixelkiln_client.gd).

const CANCELLED := 1
const INVALID_ARGUMENT := 3
const DEADLINE_EXCEEDED := 4
const PERMISSION_DENIED := 7
const RESOURCE_EXHAUSTED := 8
const UNAVAILABLE := 14
const UNAUTHENTICATED := 16


## Why a WebSocket closed: [param code] and [param why] from the peer, [param connecting] while
## the handshake was under way.
static func close_reason(
	code: int, why: String, connecting: bool, url: String, buffer_bytes: int
) -> String:
	# A close code means the handshake got through (the close may come in the same poll),
	# except 1006 (abnormal closure): the web build's WebSocket reports a refused connection so.
	if connecting and (code == -1 or code == 1006):
		return (
			"cannot connect to the PixelKiln daemon at "
			+ url
			+ " (connection refused or no WebSocket handshake). Is `pixelkiln serve` running"
			+ " with its WebSocket carrier on that port (--ws-port, default 50052; the gRPC port"
			+ " 50051 does not speak WebSocket)?"
			+ (" A daemon started with --tls-cert serves wss:// only." if url.begins_with("ws://") else "")
			+ (
				" On the web, a daemon with --token-file cannot be reached (browsers send no token)"
				+ " and the page's origin must be allowed (--ws-allow-origin)."
				if code == 1006
				else ""
			)
		)
	if code == 1009:
		return (
			"the daemon sent a frame larger than the client's inbound buffer ("
			+ str(buffer_bytes)
			+ " bytes); ask for a smaller or compressed image, or raise buffer_bytes"
		)
	if code == 1008:
		return "the daemon refused the connection: " + why + " (check the URL path, /v1)"
	if code == 1001:
		return "the daemon at " + url + " is shutting down"
	var detail := " (code " + str(code) + (", " + why if not why.is_empty() else "") + ")"
	return "connection to the daemon at " + url + " lost" + detail


## What a refused handshake means (the probe asked the daemon once): [code, code_name, reason]
## for a refusal that retrying cannot fix, or [] when the attempt just failed (see
## [method probe_lost]).
static func probe_refusal(probe: RefCounted, has_token: bool) -> Array:
	if probe.code == 401:
		var hint := (
			"; check the token (client.token or PIXELKILN_TOKEN): `pixelkiln token create NAME`"
			if has_token
			else "; set the client's token (or PIXELKILN_TOKEN) to a token of the daemon's --token-file"
		)
		var why: String = probe.text.trim_prefix("UNAUTHENTICATED: ")
		return [UNAUTHENTICATED, "UNAUTHENTICATED", why + hint]
	if probe.code == 403:
		var denied: String = probe.text.trim_prefix("PERMISSION_DENIED: ")
		return [PERMISSION_DENIED, "PERMISSION_DENIED", denied + " (HTTP 403 on the handshake)"]
	return []


## Why a handshake that was not refused failed: TLS, else [param reason] as seen before probing.
static func probe_lost(probe: RefCounted, url: String, reason: String) -> String:
	if not probe.tls_failed:
		return reason
	return (
		"the TLS handshake with "
		+ url
		+ " failed: the daemon's certificate is not trusted or does not name the host; set"
		+ " tls_ca_path (or PIXELKILN_TLS_CA) to the PEM of the CA that signed its --tls-cert"
	)


static func bad_ca(ca_path: String, loaded: Error) -> String:
	return (
		"tls_ca_path: cannot load the CA certificate '" + ca_path + "' ("
		+ error_string(loaded) + "); give the PEM file of the CA that signed the"
		+ " daemon's --tls-cert"
	)


## [code, code_name, message] of a call that could not be sent.
static func not_connected(last_error: String) -> Array:
	var why := last_error if not last_error.is_empty() else "call connect_to_daemon() first"
	return [UNAVAILABLE, "UNAVAILABLE", "not connected to the PixelKiln daemon: " + why]


## [code, code_name, message] of a frame larger than the client's buffer (the daemon's message
## limit): refused before sending, in the words of the C# client and of gRPC.
static func frame_too_big(size: int, limit: int) -> Array:
	return [
		RESOURCE_EXHAUSTED,
		"RESOURCE_EXHAUSTED",
		(
			"frame of " + str(size) + " bytes exceeds the message limit of " + str(limit)
			+ " bytes (the daemon would close the connection; raise --max-message-mib on the"
			+ " daemon and the client's buffer_bytes together, or send a smaller image)"
		),
	]
