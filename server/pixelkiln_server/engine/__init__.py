"""Queueing, scheduling, cancellation and the model worker. No protobuf here."""
