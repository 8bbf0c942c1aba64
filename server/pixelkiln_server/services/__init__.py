"""gRPC services: convert protobuf <-> domain types, delegate to the engine, stream events."""
