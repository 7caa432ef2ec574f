"""Pydantic models of request and response bodies; they also generate the OpenAPI document."""
