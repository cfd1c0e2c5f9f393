"""Thin blueprints: parse the request, call one function, shape the response."""
