"""Healer's version, in one place: pyproject.toml reads it, `/api/health` and the CLI report it."""
__version__ = "0.2.0"
