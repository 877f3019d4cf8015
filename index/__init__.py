"""Articles → passages → embeddings → a crash-safe FAISS store.

Nothing in this package imports from `qa` or `api`.
"""
