"""The boiler room: what every layer may use and the domain never needs.

Database adapter and pools (`dialect`, `database`), event stores (`store`), uploaded bytes
(`media`), pushes and their Redis relay (`push`, `push_relay`), caches (`cache`), process tuning
(`tuning`). Importing this package imports none of them: each module is imported on its own.
"""
