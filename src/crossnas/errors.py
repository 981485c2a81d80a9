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


class ConfigErrors(CrossnasError):
    """Every problem found in one config at once: `lines` holds one line per problem (field path first);
    the message is the first line plus a count of the others, so the CLI still prints one line."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        more = len(self.lines) - 1
        hint = f" (and {more} more; `crossnas config validate FILE` lists them all)" if more > 0 else ""
        super().__init__(f"{self.lines[0]}{hint}")


def error_lines(err, where: str, *, sep: str = ": ", show_input: bool = False, root: str = "") -> list[str]:
    """One line per pydantic error: `where: field.path: rule (got value)`. A value is shown only when it
    is a scalar: a rule over two fields (a model validator) must not dump the whole section."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or root
        value = e.get("input")
        scalar = not isinstance(value, (dict, list, tuple))
        got = f" (got {short(repr(value))})" if show_input and scalar else ""
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{where}{sep}{loc}: {msg}{got}" if loc else f"{where}{sep}{msg}{got}")
    return lines


def validated(model_cls, data, where: str, *, sep: str = ": ", show_input: bool = False):
    """`model_cls.model_validate(data)`, or a ConfigErrors naming `where`, each field and the rule broken
    (every error pydantic found; the message shows the first)."""
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise ConfigErrors(error_lines(e, where, sep=sep, show_input=show_input,
                                       root=model_cls.__name__)) from None
