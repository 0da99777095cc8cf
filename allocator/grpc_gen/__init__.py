"""Python stubs of Agones' allocation gRPC service, generated from ``allocator/protos`` by
``make proto`` (grpcio-tools and mypy-protobuf). Do not edit: edit the .proto and regenerate."""
