"""Question analysis: expected answer type, entity labels, focus, counted noun and term roles."""

import pytest

from qa.question import ENTITY_LABELS, AnswerType, QuestionAnalyzer


@pytest.fixture(scope="module")
def analyzer(nlp) -> QuestionAnalyzer:
    return QuestionAnalyzer(nlp=nlp)


@pytest.mark.parametrize(("question", "expected"), [
    # person / organisation
    ("Who is the Kremlin spokesman?", AnswerType.PERSON),
    ("Whom did the committee appoint as chair?", AnswerType.PERSON),
    ("Whose proposal won the vote?", AnswerType.PERSON),
    ("Which candidate did Amara Kessling beat for governor?", AnswerType.PERSON),
    ("Which company operates the container terminal?", AnswerType.ORGANIZATION),
    ("What was the name of the 73-year-old man who died?", AnswerType.PERSON),
    # what + a verb of price: the sum, unless a preposition asks for the thing paid for
    ("What did it cost to build the flood wall?", AnswerType.MONEY),
    ("What did Tessaly Foods pay to buy Greenrow?", AnswerType.MONEY),
    ("What does a newly qualified driver earn?", AnswerType.MONEY),
    ("What will the grant pay for?", AnswerType.NOUN_PHRASE),
    ("What did the city spend the money on?", AnswerType.NOUN_PHRASE),
    ("What party does the mayor belong to?", AnswerType.ORGANIZATION),
    ("Which club did the striker leave?", AnswerType.ORGANIZATION),
    ("Which firm audited the accounts?", AnswerType.ORGANIZATION),
    # date / time / duration
    ("When was the bridge closed?", AnswerType.DATE),
    ("By when should the layoffs be finished?", AnswerType.DATE),
    ("What year did the factory open?", AnswerType.DATE),
    ("In what year was the church built?", AnswerType.DATE),
    ("On which day will the strike end?", AnswerType.DATE),
    ("How long did the closure last?", AnswerType.DURATION),
    ("How many years did the repairs take?", AnswerType.DURATION),
    # place
    ("Where is the company based?", AnswerType.PLACE),
    ("In which city did she present the findings?", AnswerType.PLACE),
    ("Which stadium will host the final?", AnswerType.PLACE),
    ("Which country signed the treaty first?", AnswerType.PLACE),
    # number / quantity
    ("How many jobs is the company cutting?", AnswerType.NUMBER),
    ("How many firefighters are fighting the fire?", AnswerType.NUMBER),
    ("Which shirt number will he wear?", AnswerType.NUMBER),
    ("At what degree are the cranks set?", AnswerType.NUMBER),
    # money
    ("How much did the repairs cost?", AnswerType.MONEY),
    ("How much will drivers pay to cross the bridge?", AnswerType.MONEY),
    ("What fee did the club pay for the striker?", AnswerType.MONEY),
    ("How large was the grant that funded the study?", AnswerType.MONEY),
    ("How much emergency funding did the governor release?", AnswerType.MONEY),
    ("How big is the city's budget?", AnswerType.MONEY),
    # percent
    ("What percentage of the vote did she win?", AnswerType.PERCENT),
    ("What share of its workforce is the firm laying off?", AnswerType.PERCENT),
    ("By how much did the shares rise after the announcement?", AnswerType.PERCENT),
    ("How much less likely were patients to be readmitted?", AnswerType.PERCENT),
    ("What was the turnout in the election?", AnswerType.PERCENT),
    # reason
    ("Why was the bridge closed?", AnswerType.REASON),
    ("What caused the cost overrun?", AnswerType.REASON),
    ("What do investigators think started the fire?", AnswerType.REASON),
    ("What was the reason for the delay?", AnswerType.REASON),
    # noun phrase
    ("What did the governor promise to freeze?", AnswerType.NOUN_PHRASE),
    ("What were patients in the walking group given?", AnswerType.NOUN_PHRASE),
    ("What is the largest single item in the budget?", AnswerType.NOUN_PHRASE),
    ("How much severance will departing employees get?", AnswerType.NOUN_PHRASE),
    ("What did the chief executive say he would give up?", AnswerType.NOUN_PHRASE),
    # yes / no
    ("Did the budget pass?", AnswerType.YES_NO),
    ("Has anyone died in the fire?", AnswerType.YES_NO),
    ("Was the professor involved in the trial?", AnswerType.YES_NO),
    ("Will cyclists have to pay to use the bridge?", AnswerType.YES_NO),
    ("Is the port still closed?", AnswerType.YES_NO),
    ("Can residents return home tonight?", AnswerType.YES_NO),
])
def test_answer_type(analyzer: QuestionAnalyzer, question: str, expected: AnswerType) -> None:
    assert analyzer.analyze(question).answer_type is expected


@pytest.mark.parametrize(("answer_type", "label"), [
    (AnswerType.PERSON, "PERSON"), (AnswerType.ORGANIZATION, "ORG"), (AnswerType.DATE, "DATE"),
    (AnswerType.PLACE, "GPE"), (AnswerType.NUMBER, "CARDINAL"), (AnswerType.MONEY, "MONEY"),
    (AnswerType.PERCENT, "PERCENT"),
])
def test_entity_types_map_to_spacy_labels(answer_type: AnswerType, label: str) -> None:
    assert label in ENTITY_LABELS[answer_type][0]


def test_how_many_names_the_counted_noun(analyzer: QuestionAnalyzer) -> None:
    analysis = analyzer.analyze("How many container ships were waiting outside the harbour?")
    assert analysis.counted == "ship"
    assert analysis.labels == ("CARDINAL", "QUANTITY")


def test_class_word_of_the_answer_is_not_required_support(analyzer: QuestionAnalyzer) -> None:
    terms = {t.text: t for t in analyzer.analyze("Which company operates the Port of Saltmere?").terms}
    assert terms["company"].role == "class"
    assert terms["Saltmere"].role == "topic"
    assert terms["operates"].role == "content"


def test_a_lower_case_word_tagged_propn_is_not_a_name(analyzer: QuestionAnalyzer, nlp) -> None:
    # en_core_web_sm tags "floodwater" PROPN here; as a topic it would demand a name the sentence lacks.
    question = "Near which village was the driver killed when floodwater carried his car away?"
    assert [t.pos_ for t in nlp(question) if t.text == "floodwater"] == ["PROPN"]
    terms = {t.text: t for t in analyzer.analyze(question).terms}
    assert terms["floodwater"].role == "content"


def test_restrictive_stop_words_are_kept_as_content(analyzer: QuestionAnalyzer) -> None:
    terms = {t.text: t for t in analyzer.analyze("How many berths does it plan to automate at its other ports?").terms}
    assert terms["other"].role == "content"


def test_do_questions_ask_for_an_action(analyzer: QuestionAnalyzer) -> None:
    assert analyzer.analyze("What did Guo Shoujing do for calendars?").asks_action
    assert not analyzer.analyze("What did Kessling promise to freeze?").asks_action


def test_analysis_is_cached_per_question(analyzer: QuestionAnalyzer) -> None:
    assert analyzer.analyze("Who won?") is analyzer.analyze("  Who   won? ")


def test_empty_question_is_rejected(analyzer: QuestionAnalyzer) -> None:
    with pytest.raises(ValueError, match="empty"):
        analyzer.analyze("   ")


def test_analyzer_checks_its_pipeline() -> None:
    with pytest.raises(TypeError, match="spaCy Language, got str"):
        QuestionAnalyzer(nlp="en_core_web_sm")  # type: ignore[arg-type]


def test_how_old_asks_for_an_age(analyzer) -> None:
    assert analyzer.analyze("How old is the coach?").asks_age
    assert not analyzer.analyze("How long is the bridge?").asks_age
