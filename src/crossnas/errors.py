"""The one error type users see: a clear message, exit code 2 from the CLI."""

from __future__ import annotations


def short(value: object, limit: int = 80) -> str:
    """`repr`-free text of at most `limit` characters: error messages never print unbounded input."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class CrossnasError(ValueError):
    """Bad input (config field, file, setting). The message names the field or file and what was expected."""


class ConfigError(CrossnasError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""

    def __init__(self, field: str, expected: str, got: object = None):
        self.field = field
        msg = f"{field}: expected {expected}"
        if got is not None:
            msg += f", got {short(repr(got))}"
        super().__init__(msg)


def validated(model_cls, data, where: str, *, sep: str = ": ", show_input: bool = False):
    """`model_cls.model_validate(data)`, or a CrossnasError naming `where`, the field and the rule broken."""
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or model_cls.__name__
        got = f" (got {short(repr(err.get('input')))})" if show_input else ""
        raise CrossnasError(f"{where}{sep}{loc}: {err['msg']}{got}") from None
