"""Projections: events in, read rows (and side effects such as mail) out; and their runner."""
