"""Request and response bodies as pydantic models, and beside each response model the renderer that writes it.

The models generate the OpenAPI document; the API tests hold every answer to them (tests/response_check.py).
"""
