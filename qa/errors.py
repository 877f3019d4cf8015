"""Errors raised by the qa package.

    QAError
    ├── BadQuestion             empty, too long, or otherwise unanswerable as asked
    └── GeneratorUnavailable    the chosen answer generator cannot run here (missing extra, model, server)
"""


class QAError(Exception):
    """Base of every error the qa package raises on purpose."""


class BadQuestion(QAError):
    """The question cannot be processed as given."""


class GeneratorUnavailable(QAError):
    """The chosen answer generator cannot run (missing package, model file or server)."""
