"""The project's errors: what the user gave cannot work, and the message says what to do, in one line that names
the file or flag. The scripts print them as `script.py: error: MESSAGE` and exit 1 (console.run); anything else
is a bug and keeps its traceback."""


class UsageError(ValueError):
    """A flag or path the user gave cannot work."""


class DataError(ValueError):
    """A data set is missing, damaged or laid out wrongly."""


class PairError(ValueError):
    """A saved model's files are missing, broken or mismatched."""


class BackendError(ValueError):
    """The Keras backend asked for cannot work here."""


PROJECT_ERRORS = (UsageError, DataError, PairError, BackendError)


def short_error(error):
    """An exception as one line of at most 200 characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."
