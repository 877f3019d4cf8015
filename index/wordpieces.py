"""Word pieces of texts, straight from a model's Rust tokenizer (the `tokenizers` library).

transformers' tokenizer call wraps the same Rust tokenizer but keeps padding and truncation as state of one
shared object that every call may change, and turns each result into Python lists. Here each use has its own
copy, configured once and never changed, so threads share it without a lock, and a text is tokenized once
per use: the ONNX backend pads the encodings it sorted by length instead of tokenizing the batch again.
"""

from collections.abc import Sequence

import numpy as np
from tokenizers import Encoding, Tokenizer


class WordPieces:
    """Usage: pieces = WordPieces(model.tokenizer.backend_tokenizer, max_length=256)
    pieces.spans(["One. Two."]) -> [[(0, 3), (3, 4), (5, 8), (8, 9)]]
    pieces.model_inputs(pieces.encode(texts), pad_id=0) -> {"input_ids": …, "attention_mask": …, …}
    """

    def __init__(self, backend: Tokenizer, *, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self._whole = Tokenizer.from_str(backend.to_str())
        self._whole.no_truncation()
        self._whole.no_padding()
        self._truncated = Tokenizer.from_str(backend.to_str())
        self._truncated.enable_truncation(max_length)
        self._truncated.no_padding()

    def spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """The character span of every word piece of each text, without special tokens or truncation."""
        return [encoding.offsets for encoding in self._whole.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """What the model reads of each text: with its special tokens, truncated to `max_length`, unpadded."""
        return self._truncated.encode_batch(list(texts))

    @staticmethod
    def model_inputs(encodings: Sequence[Encoding], *, pad_id: int) -> dict[str, np.ndarray]:
        """`encodings` padded on the right to the longest: int64 input_ids, attention_mask, token_type_ids."""
        width = max((len(encoding.ids) for encoding in encodings), default=0)
        ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            ids[row, :length] = encoding.ids
            mask[row, :length] = encoding.attention_mask
            types[row, :length] = encoding.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
