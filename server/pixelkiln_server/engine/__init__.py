"""The front's engine (admission, queueing, scheduling, live sessions, the runner pool) and,
used by the runner host only, the model registry and its memory budget. No protobuf here."""
