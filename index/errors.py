"""Errors raised by the index package.

    IndexingError
    ├── StoreError
    │   ├── StoreNotFound      no index at the directory
    │   ├── StoreCorrupt       a file of the index failed a check and no good state could be recovered
    │   ├── ModelMismatch      the index was built with another embedding model or dimension
    │   ├── StoreBusy          another writer holds the lock longer than we were willing to wait
    │   └── StoreReadOnly      the index directory cannot be written
    ├── DocumentNotFound       no document with that id
    └── EmbedderUnavailable    the embedding model cannot be loaded

Loaders never raise for a bad file: they report it as a `Skipped` record, so one bad file never stops a batch.
"""


class IndexingError(Exception):
    """Base of every error the index package raises on purpose."""


class StoreError(IndexingError):
    """The store on disk cannot be used as asked."""


class StoreNotFound(StoreError):
    """No index exists at the directory."""


class StoreCorrupt(StoreError):
    """A file of the index failed a check and no good state could be recovered."""


class ModelMismatch(StoreError):
    """The index was built with another embedding model or dimension."""


class StoreBusy(StoreError):
    """Another process holds the writer lock."""


class StoreReadOnly(StoreError):
    """The index directory cannot be written."""


class DocumentNotFound(IndexingError):
    """No document with that id is indexed."""


class EmbedderUnavailable(IndexingError):
    """The embedding model cannot be loaded."""
