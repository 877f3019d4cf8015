"""Word pieces of texts, straight from a model's Rust tokenizer (the `tokenizers` library).

transformers' tokenizer call wraps the same Rust tokenizer but keeps padding and truncation as state of one
shared object that every call may change, and turns each result into Python lists. Here each use has its own
copy, configured once and never changed, so threads share it without a lock, and a text is tokenized once
per use: the ONNX backend pads the encodings it sorted by length instead of tokenizing the batch again.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

_NO_LIMIT = 1_000_000


class WordPieces:
    """Usage: pieces = WordPieces(model.tokenizer, max_length=256)
    pieces.spans(["One. Two."]) -> [[(0, 3), (3, 4), (5, 8), (8, 9)]]
    pieces.model_inputs(pieces.encode(texts)) -> {"input_ids": …, "attention_mask": …, "token_type_ids": …}

    `tokenizer` is a transformers fast tokenizer; its sides of truncation and padding, pad token and pad type
    id are kept, so the inputs equal its own padded, truncated call. `max_length` None: the tokenizer's own
    `model_max_length`, as transformers truncates then.
    """

    def __init__(self, tokenizer: Any, *, max_length: int | None) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: its word pieces have no offsets")
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        config = backend.to_str()  # the whole tokenizer as JSON: each copy is built from it
        self._whole = Tokenizer.from_str(config)
        self._whole.no_truncation()
        self._whole.no_padding()
        self._truncated = Tokenizer.from_str(config)
        limit = tokenizer.model_max_length if max_length is None else max_length
        if limit is None or limit > _NO_LIMIT:  # transformers' "no limit" is 10**30
            self._truncated.no_truncation()
        else:
            self._truncated.enable_truncation(limit, direction=tokenizer.truncation_side)
        self._truncated.no_padding()
        self._pad_id: int | None = tokenizer.pad_token_id
        self._pad_type_id = int(tokenizer.pad_token_type_id)
        self._pad_left = tokenizer.padding_side == "left"

    @property
    def can_pad(self) -> bool:
        """Whether the tokenizer has a pad token, which `model_inputs` needs for batches of unequal lengths."""
        return self._pad_id is not None

    def spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """The character span of every word piece of each text, without special tokens or truncation."""
        return [encoding.offsets for encoding in self._whole.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """What the model reads of each text: with its special tokens, truncated to `max_length`, unpadded."""
        return self._truncated.encode_batch(list(texts))

    def model_inputs(self, encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
        """`encodings` padded to the longest: int64 input_ids, attention_mask and token_type_ids."""
        width = max((len(encoding.ids) for encoding in encodings), default=0)
        if self._pad_id is None and any(len(encoding.ids) != width for encoding in encodings):
            raise ValueError("the tokenizer has no pad token: texts of unequal lengths cannot share a batch")
        ids = np.full((len(encodings), width), self._pad_id or 0, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.full((len(encodings), width), self._pad_type_id, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            place = slice(width - length, width) if self._pad_left else slice(0, length)
            ids[row, place] = encoding.ids
            mask[row, place] = encoding.attention_mask
            types[row, place] = encoding.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
