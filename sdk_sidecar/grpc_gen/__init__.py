"""Python stubs of the Agones SDK's gRPC services, generated from ``sdk_sidecar/protos`` by
``make proto`` (grpcio-tools and mypy-protobuf). Do not edit: edit the .proto and regenerate."""
