"""Application services: load aggregates, call their decisions, append the events."""
