"""The exception family of retake: one base class so the CLI can turn any of them into a one-line error."""


class RetakeError(Exception):
    """Base class of every error retake raises on purpose (bad input, missing files, broken media)."""
