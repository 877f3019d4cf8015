import pytest

from qa.support import supports, unsupported_words

QUOTE = "Kremlin spokesman Dmitry Peskov said on Tuesday that the talks had cost $48.6 million."


@pytest.mark.parametrize("sentence", [
    "Dmitry Peskov [1].",
    "The Kremlin spokesman is Dmitry Peskov [1].",
    "Peskov said the talks cost $48.6 million [1].",
    "The talks had cost 48.6 million dollars, Peskov said.",
])
def test_sentences_backed_by_the_quote_are_supported(sentence):
    assert supports(sentence, [QUOTE])


@pytest.mark.parametrize(("sentence", "missing"), [
    ("Sergei Lavrov [1].", ["Lavrov"]),  # the opening word may be any word: coverage judges it
    ("Peskov said the talks cost $52 million [1].", ["52"]),
    ("The spokesman spoke in Oslo [1].", ["Oslo"]),
    ("Negotiators expect a ceasefire agreement soon, diplomats believe.", None),
])
def test_a_missing_name_number_or_most_content_is_unsupported(sentence, missing):
    words = unsupported_words(sentence, [QUOTE])
    assert words
    if missing is not None:
        assert words == missing


def test_content_is_gathered_over_all_quotes():
    assert not supports("Peskov spoke in Oslo [1][2].", [QUOTE])
    assert supports("Peskov spoke in Oslo [1][2].", [QUOTE, "He spoke in Oslo."])


def test_a_sentence_without_content_borrows_the_question():
    assert supports("Yes [1].", [QUOTE], question="Did Dmitry Peskov speak on Tuesday?")
    assert not supports("Yes [1].", [QUOTE], question="Did Dmitry Peskov speak in Oslo?")
    assert not supports("Yes [1].", [QUOTE])


def test_empty_quotes_support_nothing():
    assert not supports("Dmitry Peskov [1].", [])
    assert not supports("", [QUOTE])
