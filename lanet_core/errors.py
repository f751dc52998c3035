"""Exceptions that carry a message meant for the user (the CLI prints them without a traceback)."""


class LanetError(Exception):
    """Base of every error lanet raises on purpose: bad input, missing data, bad config."""


class ConfigError(LanetError, ValueError):
    """A config key or value that cannot be used."""


class DataError(LanetError, ValueError):
    """An image, mask or manifest row that cannot be used; the message names the file or row."""


class BudgetExhausted(LanetError):
    """A time budget ran out; everything finished so far is saved and a new call continues."""


class StorageError(LanetError, OSError):
    """A file could not be written or read for a reason of the storage (disk full, read-only, no permission);
    the message names the path and what to do."""


class TrainingDiverged(LanetError):
    """A training loss became NaN or infinite; no finished record is written."""
