"""The /v1 REST API: handlers, OpenAPI document and the JSON client."""
