"""Article text → overlapping, sentence-aligned passages with exact character spans."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.sentences import SentenceSplitter

TokenSpans = Callable[[Sequence[str]], list[list[tuple[int, int]]]]


@dataclass(frozen=True)
class Chunk:
    """A passage's place in its article: `text[char_start:char_end]` is the passage."""

    char_start: int
    char_end: int


class Chunker:
    """Packs whole sentences into passages of at most `max_tokens` word pieces, with overlap.

    Usage: Chunker(max_tokens=200, overlap_tokens=40, token_spans=embedder.token_spans).chunk(text)

    A sentence longer than `max_tokens` is the only thing ever cut, at word-piece boundaries (preferring
    the start of a word). Consecutive passages share whole trailing sentences of at most `overlap_tokens`.
    """

    def __init__(
        self,
        *,
        max_tokens: int,
        overlap_tokens: int,
        token_spans: TokenSpans,
        splitter: SentenceSplitter | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError(f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens}")
        self._max = max_tokens
        self._overlap = overlap_tokens
        self._token_spans = token_spans
        self._splitter = splitter or SentenceSplitter()

    def chunk(self, text: str) -> list[Chunk]:
        """Return the passages of `text` in order; every non-space character lies in at least one."""
        units = self._units(text)
        chunks: list[Chunk] = []
        first = 0
        while first < len(units):
            last, used = first, units[first][2]
            while last + 1 < len(units) and used + units[last + 1][2] <= self._max:
                last += 1
                used += units[last][2]
            chunks.append(Chunk(units[first][0], units[last][1]))
            if last + 1 == len(units):
                break
            next_first, carried = last + 1, 0
            while next_first - 1 > first and carried + units[next_first - 1][2] <= self._overlap:
                next_first -= 1
                carried += units[next_first][2]
            first = next_first
        return chunks

    def _units(self, text: str) -> list[tuple[int, int, int]]:
        """Sentences as (start, end, tokens); a sentence over the limit becomes several units."""
        sentences = self._splitter.spans(text)
        pieces = self._token_spans([text[s:e] for s, e in sentences])
        units: list[tuple[int, int, int]] = []
        for (start, end), tokens in zip(sentences, pieces, strict=True):
            if len(tokens) <= self._max:
                units.append((start, end, max(len(tokens), 1)))
            else:
                units.extend(self._split_long(text, start, end, tokens))
        return units

    def _split_long(
        self, text: str, start: int, end: int, tokens: list[tuple[int, int]]
    ) -> list[tuple[int, int, int]]:
        units = []
        first = 0
        while first < len(tokens):
            cut = min(first + self._max, len(tokens))
            if cut < len(tokens):
                # Back off to a word start so a word is not split across passages, if one is near.
                for candidate in range(cut, max(first + self._max // 2, first + 1), -1):
                    offset = start + tokens[candidate][0]
                    if offset > 0 and text[offset - 1].isspace():
                        cut = candidate
                        break
            piece_end = start + tokens[cut - 1][1] if cut < len(tokens) else end
            piece_start = start + tokens[first][0] if first else start
            units.append((piece_start, piece_end, cut - first))
            first = cut
        return units
