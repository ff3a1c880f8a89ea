"""Subcommands of ``python -m landscape_pl`` beyond Lightning's own: each a typed function."""
