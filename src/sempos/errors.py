"""Errors that name the problem and the fix; stages print them without a traceback."""


class SemposError(Exception):
    """Base class: the message must say what is wrong and how to fix it."""


class ConfigError(SemposError):
    pass


class DatasetError(SemposError):
    pass


class ChecksumError(DatasetError):
    pass


class NonFiniteLossError(SemposError):
    pass


class InputError(SemposError):
    """A stage's input is missing, corrupt, or was made with other settings than the params in use."""
