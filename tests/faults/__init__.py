"""Fault injection: buttress under concurrent load while its PostgreSQL and Redis fail."""
