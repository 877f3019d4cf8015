"""Errors raised by the qa package.

    QAError
    ├── BadQuestion             empty, too long, or otherwise unanswerable as asked
    ├── GeneratorUnavailable    the chosen answer generator cannot run here (missing extra, model, server)
    └── ChatError               the chat session store
        ├── UnknownSession      no session with that id
        └── ChatStoreCorrupt    the sessions database cannot be read
"""


class QAError(Exception):
    """Base of every error the qa package raises on purpose."""


class BadQuestion(QAError):
    """The question cannot be processed as given."""


class GeneratorUnavailable(QAError):
    """The chosen answer generator cannot run (missing package, model file or server)."""


class ChatError(QAError):
    """A problem with the chat session store."""


class UnknownSession(ChatError):
    """No chat session has that id (it never existed, or was deleted)."""


class ChatStoreCorrupt(ChatError):
    """The chat sessions database is damaged or not a citeqa chat database."""
