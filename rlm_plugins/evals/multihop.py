"""`multihop` (BrowseComp style): a corpus of generated documents where the answer needs 2 to 4 linked facts.

product -> the company that makes it -> its founder -> the founder's birth city -> the city's region. Facts are
phrased in several ways, and every entity also appears in distractor documents.
"""

from __future__ import annotations

import random
import re
from typing import Any

from rlm_plugins.evals import solvers
from rlm_plugins.evals._vocab import filler_pool, unique_names
from rlm_plugins.evals.base import CHARS_PER_TOKEN, EvalExample, Task
from rlm_plugins.evals.scoring import exact_choice

MAKES = ("{company} makes the {product}.", "The {product} is built by {company}.")
FOUNDED = ("{company} was founded by {person}.", "{person} started {company} years ago.")
BORN = ("{person} was born in {city}.", "{person} grew up in {city}, the town of their birth.")
LIES = ("{city} lies in the region of {region}.", "{city} is a town in {region}.")
HOPS = (
    "Which company makes the {}?",
    "Who founded {}?",
    "In which city was {} born?",
    "In which region is {}?",
)
QUESTIONS = {
    2: "Who founded the company that makes the {product}?",
    3: "In which city was the founder of the company that makes the {product} born?",
    4: "In which region lies the city where the founder of the company that makes the {product} was born?",
}
_DOC_CHARS = 590
_ASK = re.compile(r"Question: (.+)\nReply with the name only, or NONE\.")


def generate(rng: random.Random, size: int, variant: str) -> EvalExample:
    hops = int(variant[0])
    n_docs = max(size * CHARS_PER_TOKEN // _DOC_CHARS, 12)
    n = max(n_docs // 4, 3)
    names = unique_names(rng, 5 * n, 3)
    products = [f"{name} {rng.randrange(10, 99)}" for name in names[:n]]
    companies = [f"{name} Works" for name in names[n : 2 * n]]
    people = [f"{a} {b}" for a, b in zip(names[2 * n : 3 * n], names[3 * n : 4 * n], strict=True)]
    regions = names[4 * n : 4 * n + max(n // 3, 2)]
    cities = [f"Port {name}" for name in names[4 * n + len(regions) : 5 * n]] or [f"Port {names[0]}"]
    pool = filler_pool(rng, 300)
    docs: list[tuple[str, list[str]]] = []
    for i, company in enumerate(companies):
        person, city = people[i], cities[i % len(cities)]
        docs.append((company, [rng.choice(MAKES).format(company=company, product=products[i])]))
        docs.append((company, [rng.choice(FOUNDED).format(company=company, person=person)]))
        docs.append((person, [rng.choice(BORN).format(person=person, city=city)]))
    for j, city in enumerate(cities):
        docs.append((city, [rng.choice(LIES).format(city=city, region=regions[j % len(regions)])]))
    while len(docs) < n_docs:
        docs.append((rng.choice(people), [f"{rng.choice(people)} once visited {rng.choice(cities)}."]))
    rng.shuffle(docs)
    parts = []
    for number, (title, facts) in enumerate(docs, 1):
        sentences = rng.sample(pool, 8) + facts
        rng.shuffle(sentences)
        parts.append(f"### Document {number}: about {title}\n" + " ".join(sentences))
    target = rng.randrange(len(companies))
    chain = [products[target], companies[target], people[target], cities[target % len(cities)]]
    chain.append(regions[cities.index(chain[3]) % len(regions)])
    kinds = {2: people, 3: cities, 4: regions}
    meta = {"product": products[target], "hops": hops, "chain": chain, "candidates": list(kinds[hops])}
    question = QUESTIONS[hops].format(product=products[target]) + " Answer with the name only."
    return EvalExample("multihop", "", "\n".join(parts) + "\n", question, chain[hops], meta)


def score(answer: Any, example: EvalExample) -> float:
    return exact_choice(answer, example.answer, example.meta["candidates"])


def oracle(example: EvalExample) -> list[str]:
    questions = list(HOPS[: example.meta["hops"]])
    body = f"answer = follow_chain(context, llm_query, {example.meta['product']!r}, {questions!r})"
    return solvers.replies([solvers.follow_chain], body)


def sub_answer(prompt: str) -> str | None:
    """Answers one hop from the documents in the prompt, by the phrasings the generator uses."""
    asked = _ASK.search(prompt)
    if asked is None:
        return None
    question = asked.group(1)
    for hop, templates in zip(HOPS, (MAKES, FOUNDED, BORN, LIES), strict=True):
        head, tail = hop.split("{}")
        if question.startswith(head) and question.endswith(tail):
            entity = question[len(head) : len(question) - len(tail)]
            return _find(templates, hop, entity, prompt) or "NONE"
    return "NONE"


def _find(templates: tuple[str, ...], hop: str, entity: str, text: str) -> str | None:
    given = {0: "product", 1: "company", 2: "person", 3: "city"}[HOPS.index(hop)]
    wanted = {0: "company", 1: "person", 2: "city", 3: "region"}[HOPS.index(hop)]
    name = r"([A-Z][\w]*(?: [A-Z][\w]*| Works| \d+)*)"
    for template in templates:
        pattern = re.escape(template).replace(re.escape("{" + given + "}"), re.escape(entity))
        pattern = pattern.replace(re.escape("{" + wanted + "}"), name)
        found = re.search(pattern, text)
        if found:
            return found.group(1)
    return None


TASK = Task(
    name="multihop",
    generate=generate,
    score=score,
    oracle=oracle,
    sub_answer=sub_answer,
    variants=("2hop", "3hop", "4hop"),
    profile=(
        "Retrieval plus reasoning: each hop needs a search and a reading, and an error early in the chain is "
        "fatal. Work grows with the hops, not with the size."
    ),
)
