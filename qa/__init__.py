"""Question (+ chat history) → retrieval → cited answer, and evaluation. Imports `index`, never `api`."""
