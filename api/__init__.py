"""The HTTP side: Starlette routes, request/response models, auth, errors."""
