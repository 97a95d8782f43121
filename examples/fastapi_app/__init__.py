"""FastAPI example service using every buttress module (see README.md)."""
