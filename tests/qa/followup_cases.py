# ruff: noqa: E501  (article paragraphs are one line each, as in the demo articles)
"""Held-out follow-up cases for the chat tests: articles and conversations written for these tests only.

They are not in examples/ and the rewriter was not tuned on them (written after the rules, to check that
the rules carry beyond the ten demo chats). Each follow-up names the entity its standalone form must hold.
"""

HELDOUT_ARTICLES = {
    "verdane-fine": """---
title: Verdane Water fined £2.1 million over River Ashby sewage spill
published: 2026-09-03
---

Verdane Water was fined £2.1 million on Monday after untreated sewage from its Millbrook treatment works flowed into the River Ashby for three days last October.

Judge Patricia Okonjo, sitting at Carlow Crown Court, said the company had ignored repeated alarms at the plant. "This was not an accident but a failure of management," she said.

The spill killed an estimated 4,000 fish along an eight-kilometre stretch of the river, according to the Environment Agency, which brought the prosecution.

Verdane's chief executive, Martin Hale, apologised outside the court. He said the company would spend £15 million upgrading the Millbrook works by the end of 2027.

The fine will be paid into a river restoration fund managed by the Ashby Rivers Trust. The director of the Ashby Rivers Trust, Sunita Rao, said the money would pay for new wetlands near the village of Elmstead.
""",
    "kestrel-route": """---
title: Kestrel Air launches direct flights from Dunmore to Lisbon
published: 2026-10-12
---

Kestrel Air will begin direct flights between Dunmore Airport and Lisbon on November 4. Kestrel Air chief executive Maria Santos announced the route on Wednesday at a press conference in Dunmore.

The route will run four times a week using 180-seat Airbus A320 aircraft. The airline expects to carry 90,000 passengers on the route in its first year.

Dunmore Airport's managing director, Fiona Baird, called the new route "a huge vote of confidence in the region". She said the airport would open a new departure lounge in March.

Return fares will start at £89. Kestrel Air also said it would hire 60 cabin crew and engineers at its Dunmore base.
""",
}

# Each conversation: turns of {"question", "answers", and for follow-ups "standalone" and "needs"}.
HELDOUT_CHATS = [
    {"id": "h1", "turns": [
        {"question": "Who is the chief executive of Verdane Water?", "answers": ["Martin Hale"]},
        {"question": "What did he say the company would spend?", "answers": ["£15 million"],
         "standalone": "What did Martin Hale say Verdane Water would spend?", "needs": ["Martin Hale"]},
        {"question": "And how much was it fined?", "answers": ["£2.1 million"],
         "standalone": "How much was Verdane Water fined?", "needs": ["Verdane Water"]},
    ]},
    {"id": "h2", "turns": [
        {"question": "Which judge heard the Verdane Water case?", "answers": ["Judge Patricia Okonjo",
                                                                            "Patricia Okonjo"]},
        {"question": "Where was she sitting?", "answers": ["Carlow Crown Court", "at Carlow Crown Court"],
         "standalone": "Where was Judge Patricia Okonjo sitting?", "needs": ["Patricia Okonjo"]},
        {"question": "What did she say the company had ignored?", "answers": ["repeated alarms at the plant",
                                                                             "repeated alarms"],
         "standalone": "What did Patricia Okonjo say Verdane Water had ignored?", "needs": ["Patricia Okonjo"]},
    ]},
    {"id": "h3", "turns": [
        {"question": "How many fish did the River Ashby spill kill?", "answers": ["4,000", "an estimated 4,000"]},
        {"question": "Who brought the prosecution over it?", "answers": ["the Environment Agency",
                                                                        "Environment Agency"],
         "standalone": "Who brought the prosecution over the River Ashby spill?", "needs": ["River Ashby"]},
    ]},
    {"id": "h4", "turns": [
        {"question": "Which airline is launching flights from Dunmore to Lisbon?", "answers": ["Kestrel Air"]},
        {"question": "How many passengers do they expect in the first year?", "answers": ["90,000"],
         "standalone": "How many passengers does Kestrel Air expect on the Lisbon route in its first year?",
         "needs": ["Kestrel Air"]},
        {"question": "How many cabin crew and engineers will they hire?", "answers": ["60"],
         "standalone": "How many cabin crew and engineers will Kestrel Air hire?", "needs": ["Kestrel Air"]},
    ]},
    {"id": "h5", "turns": [
        {"question": "Who is the chief executive of Verdane Water?", "answers": ["Martin Hale"]},
        {"question": "And the director of the Ashby Rivers Trust?", "answers": ["Sunita Rao"],
         "standalone": "Who is the director of the Ashby Rivers Trust?", "needs": ["Ashby Rivers Trust"]},
        {"question": "What did she say the money would pay for?", "answers": [
            "new wetlands near the village of Elmstead", "new wetlands"],
         "standalone": "What did Sunita Rao say the money would pay for?", "needs": ["Sunita Rao"]},
    ]},
    {"id": "h6", "turns": [
        {"question": "Who announced the Lisbon route?", "answers": ["Kestrel Air chief executive Maria Santos",
                                                                  "Maria Santos"]},
        {"question": "When was that?", "answers": ["Wednesday", "on Wednesday"],
         "standalone": "When did Maria Santos announce the Lisbon route?", "needs": ["Maria Santos"]},
    ]},
    {"id": "h7", "turns": [
        {"question": "Who is the managing director of Dunmore Airport?", "answers": ["Fiona Baird"]},
        {"question": "What will the airport open in March, according to her?", "answers": [
            "a new departure lounge", "new departure lounge"],
         "standalone": "What will Dunmore Airport open in March, according to Fiona Baird?",
         "needs": ["Fiona Baird"]},
        {"question": "What about Kestrel Air?", "answers": [],
         "standalone": "What will Kestrel Air open in March?", "needs": ["Kestrel Air"]},
    ]},
]
