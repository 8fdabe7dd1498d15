"""Errors a user can fix; entry points show them as one line instead of a traceback."""


class GestureRNNError(Exception):
    """Base class for problems with the user's input, config or environment."""


class ConfigError(GestureRNNError, ValueError):
    """A config value is missing, of the wrong type or out of its allowed range."""


class DataError(GestureRNNError):
    """The dataset cannot be found, fetched, verified or parsed."""


class StorageError(GestureRNNError, OSError):
    """A file could not be written (a full disk, no permission); the message says which."""


class TrackingError(GestureRNNError):
    """The MLflow tracking store or server cannot be reached."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training; the message says how to resume.

    A KeyboardInterrupt, so a sweep stops too instead of counting it as one failed trial.
    """
