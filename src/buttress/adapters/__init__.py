"""Adapters that plug buttress into web frameworks and other ecosystems.

Each adapter module imports its framework (if any) only when used, so
``import buttress`` stays light.
"""
