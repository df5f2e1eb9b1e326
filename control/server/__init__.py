"""The API service: validation, defaulting, objects over a store, watch, gRPC."""
