extends RefCounted
## After a failed WebSocket handshake, asks the same URL with the same headers over
## [HTTPClient] and reads the daemon's answer: [WebSocketPeer] reports a refused handshake as
## close code -1, the same as a closed port, so a 401 (no or unknown token) or a 403 (Origin)
## would otherwise look like "is the daemon running?". Not used on the web, where a browser
## sends no custom handshake headers anyway.

## True once finished; [member code] is then the HTTP status (0: no answer).
var done := false
var code := 0
## The body of the answer (the daemon's "UNAUTHENTICATED: ..." text).
var text := ""
## The TLS handshake failed (the daemon's certificate is not trusted).
var tls_failed := false

var _http := HTTPClient.new()
var _path := "/"
var _headers := PackedStringArray()
var _sent := false
var _body := PackedByteArray()


func _init(url: String, headers: PackedStringArray, tls: TLSOptions) -> void:
	var secure := url.begins_with("wss://")
	var rest := url.substr(6 if secure else 5)
	var slash := rest.find("/")
	var authority := rest if slash < 0 else rest.substr(0, slash)
	_path = "/" if slash < 0 else rest.substr(slash)
	var colon := authority.rfind(":")
	var host := authority if colon < 0 else authority.substr(0, colon)
	var port := (443 if secure else 80) if colon < 0 else authority.substr(colon + 1).to_int()
	_headers = headers
	if secure and tls == null:
		tls = TLSOptions.client()
	if _http.connect_to_host(host, port, tls if secure else null) != OK:
		done = true


## Advances the request; returns [member done].
func step() -> bool:
	if done:
		return true
	_http.poll()
	var status := _http.get_status()
	if status == HTTPClient.STATUS_CONNECTED:
		if not _sent:
			_sent = true
			if _http.request(HTTPClient.METHOD_GET, _path, _headers) != OK:
				done = true
		else:
			_finish()
	elif status == HTTPClient.STATUS_BODY:
		_body.append_array(_http.read_response_body_chunk())
		if _body.size() > 16384:
			_finish()
	elif status in [HTTPClient.STATUS_CONNECTING, HTTPClient.STATUS_RESOLVING]:
		pass
	elif status == HTTPClient.STATUS_REQUESTING:
		pass
	elif _sent and _http.has_response():
		_finish()
	else:
		tls_failed = status == HTTPClient.STATUS_TLS_HANDSHAKE_ERROR
		done = true
	return done


func _finish() -> void:
	code = _http.get_response_code()
	text = _body.get_string_from_utf8().strip_edges()
	_http.close()
	done = true
