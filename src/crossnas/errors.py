"""The one error type users see: a clear message, exit code 2 from the CLI."""

from __future__ import annotations


class CrossnasError(ValueError):
    """Bad input (config field, file, setting). The message names the field or file and what was expected."""


class ConfigError(CrossnasError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""

    def __init__(self, field: str, expected: str, got: object = None):
        self.field = field
        msg = f"{field}: expected {expected}"
        if got is not None:
            msg += f", got {got!r}"
        super().__init__(msg)
