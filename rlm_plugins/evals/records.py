"""Customer records whose label must be inferred from their text (OOLONG style), shared by `aggregate` and
`pairs`; and the scripted sub-model that labels them as a reader would, from the phrases each label uses."""

from __future__ import annotations

import random
import re

from rlm_plugins.evals.base import CHARS_PER_TOKEN

PHRASES = {
    "billing": (
        "was charged twice",
        "finds the invoice total wrong",
        "wants the late fee refunded",
        "had a card payment declined",
    ),
    "shipping": (
        "got the parcel a week late",
        "sees no movement in tracking",
        "received a crushed box",
        "had the order left at the wrong door",
    ),
    "praise": (
        "loved how quick the reply was",
        "thinks the new design is wonderful",
        "wants to thank the whole team",
        "rates the service five stars",
    ),
    "bug": (
        "sees the app crash on launch",
        "finds the export button does nothing",
        "gets an error after saving",
        "watches the page freeze while scrolling",
    ),
    "feature": (
        "would like a dark mode",
        "asks for a calendar export",
        "wishes for offline access",
        "suggests bulk editing",
    ),
    "account": (
        "cannot reset the password",
        "wants to change the login email",
        "asks to close the profile",
        "never receives the sign-in code",
    ),
}
LABELS = tuple(PHRASES)
SUBJECTS = ("The customer", "A user", "This person", "The caller", "The client")
CLASSIFY_HEAD = (
    "Classify each record below into exactly one of these labels: " + ", ".join(LABELS) + ". billing: payments "
    "and charges; shipping: deliveries; praise: compliments; bug: something broken; feature: requests for new "
    "things; account: sign-in and profile. Reply with one line per record: the record number, a space, the label."
)
_RECORD = re.compile(r"^Record (\d+) \| user \d+ \| [\d-]+ \| (.*)$", re.M)
_LABEL_OF = {phrase: label for label, phrases in PHRASES.items() for phrase in phrases}
_RECORD_CHARS = 78


def make_records(rng: random.Random, size: int, users: int) -> tuple[str, list[tuple[int, int, str]]]:
    """Records as text, and (record number, user, label) for each; labels follow skewed random weights."""
    n = max(size * CHARS_PER_TOKEN // _RECORD_CHARS, 20)
    weights = [rng.uniform(0.3, 3.0) for _ in LABELS]
    rows, lines = [], []
    for number in range(1, n + 1):
        label = rng.choices(LABELS, weights)[0]
        user = rng.randrange(1, users + 1)
        date = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        text = f"{rng.choice(SUBJECTS)} {rng.choice(PHRASES[label])}."
        rows.append((number, user, label))
        lines.append(f"Record {number:05d} | user {user} | {date} | {text}")
    return "\n".join(lines) + "\n", rows


def label_of(text: str) -> str | None:
    """The label a record's text expresses, from the phrases each label uses."""
    for phrase, label in _LABEL_OF.items():
        if phrase in text:
            return label
    return None


def sub_answer(prompt: str) -> str | None:
    """The scripted sub-model's answer to a classification prompt: one `number label` line per record."""
    if not prompt.startswith(CLASSIFY_HEAD):
        return None
    return "\n".join(f"{number} {label_of(text)}" for number, text in _RECORD.findall(prompt))
