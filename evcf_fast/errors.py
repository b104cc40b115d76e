"""Domain exceptions.

Every one subclasses ValueError so callers that only care about "bad input" can catch that,
while callers that branch on the cause can catch the specific class.
"""


class EvcfError(ValueError):
    """Base class of evcf_fast's own input errors."""


class DataFormatError(EvcfError):
    """A data file does not have the expected format; the message names the file and line."""

    def __init__(self, path, line, message):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class IncompatibleDatasetError(EvcfError):
    """A dataset or checkpoint directory from an incompatible version or for other data."""


class NonFiniteLossError(EvcfError):
    """Training produced a NaN or infinite loss."""


class RunFolderBusyError(EvcfError):
    """Another process is writing the run folder (it holds the folder's lock)."""
