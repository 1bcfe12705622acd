"""The configuration a command runs with: OUTLYNE_* as the app reads it, and what its options change."""

from __future__ import annotations

from outlyne.config import Config


def config_with(**options: object) -> Config:
    """Config.from_env() with the fields the command line gave instead; an option left out (None, or an
    empty string) keeps the environment's value."""
    config = Config.from_env()
    given = {field: value for field, value in options.items() if value}
    return config.with_options(**given) if given else config
