"""The boiler room: what every layer may use and the domain never needs.

SQL on either dialect (`dialect`) and the database's pools, transactions and locks (`database`),
the event stores (`store`), uploaded bytes (`media`) and what dead processes left of uploads
(`abandoned_uploads`), files written whole and durably (`durable`), JSON encoding (`encoding`), pushes and their
Redis relay (`push`, `push_relay`), caches (`cache`), process tuning (`tuning`), log lines
(`logs`), and the API's own tables (`auth_failures`, `idempotency_keys`, `refresh_families`,
`stored_bytes`). Importing this package imports none of them: each module is imported on its own.
"""
