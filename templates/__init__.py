"""Holds no code: it lets pyproject.toml ship this folder inside the package as service._templates."""
