"""Errors that name the problem and the fix; stages print them without a traceback."""


class SemposError(Exception):
    """Base class: the message must say what is wrong and how to fix it."""


class ConfigError(SemposError):
    pass


class InvalidValueError(SemposError, ValueError):
    """A value the computation cannot use (a shape, a size, an empty list, a choice), named with what sets it.

    Also a ValueError, so library callers can catch it as one. Violations of sempos's own invariants (a bug)
    stay RuntimeError/assert: their traceback is the useful report."""


class DatasetError(SemposError):
    pass


class ChecksumError(DatasetError):
    pass


class NonFiniteLossError(SemposError):
    pass


class InputError(SemposError):
    """A stage's input is missing, corrupt, or was made with other settings than the params in use."""
