"""Property-based fuzzing of the HTTP APIs, driven by their own OpenAPI documents."""
