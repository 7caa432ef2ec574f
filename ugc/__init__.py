"""UGC Market: the domain (aggregates, events, errors) plus configuration and storage wiring."""
