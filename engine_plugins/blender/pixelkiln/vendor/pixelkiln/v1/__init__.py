"""Generated protobuf and gRPC modules of the pixelkiln.v1 contract (see tools/gen_protos.py)."""
