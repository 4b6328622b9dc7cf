"""Writes data/train.jsonl and data/eval.jsonl: support tickets and the team that handles them.

Also data/shifted.jsonl: tickets about a product launched after the model was
trained (a smart thermostat), longer and mostly bugs, that the demo sends to
the deployed model so that `llmci monitor check` has a drift to find.

Deterministic (seeded), so the committed files are reproducible:
    python examples/quickstart/make_dataset.py
Each line is `{"id", "vars": {"ticket", "labels"}, "completion"}`; the prompt is
prompts/classify.j2 rendered with the vars (llmci.yaml: train.prompt).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LABELS = ["account", "billing", "bug", "feature"]
PRODUCTS = ["the mobile app", "the dashboard", "the web editor", "the API", "the desktop client", "the reports page"]
FEATURES = ["dark mode", "CSV export", "two-factor login", "a Slack integration", "bulk editing", "keyboard shortcuts",
            "offline sync", "custom fields", "an audit log", "SSO with Okta"]
AMOUNTS = ["$12", "$49", "$99", "$240", "$15.50", "$7"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]

TICKETS = {
    "billing": [
        "I was charged {amount} twice this month, please refund one of the payments.",
        "My invoice for {month} shows {amount} but my plan costs less.",
        "How do I update the credit card used for my subscription?",
        "Can I get a refund for the {amount} charge from {month}?",
        "The payment failed but my bank says the {amount} went through.",
        "Please send me a copy of the invoice for {month} with our VAT number.",
        "Why did my subscription price go up to {amount}?",
        "I cancelled in {month} and was still billed {amount}.",
        "We want to switch from monthly to yearly billing.",
        "There is an unknown charge of {amount} on my statement.",
    ],
    "bug": [
        "{product} crashes every time I open it.",
        "When I click save in {product} nothing happens and my changes are lost.",
        "{product} shows an error 500 since this morning.",
        "The search in {product} returns no results even for exact names.",
        "Images do not load in {product} after the last update.",
        "{product} freezes when I upload a file larger than 10 MB.",
        "Dates are shown in the wrong time zone in {product}.",
        "The export button in {product} produces an empty file.",
        "I get logged out of {product} every few minutes.",
        "Notifications from {product} arrive twice.",
    ],
    "feature": [
        "Please add {feature} to {product}.",
        "It would be great if {product} had {feature}.",
        "Are you planning to support {feature}?",
        "Our team really needs {feature}, is it on the roadmap?",
        "Could you build {feature} for the enterprise plan?",
        "I would like to request {feature} in {product}.",
        "Feature idea: {feature} would save us hours every week.",
        "Any chance of getting {feature} soon?",
    ],
    "account": [
        "I forgot my password for {product} and the reset email never arrives.",
        "How do I change the email address on my account since {month}?",
        "Please delete my account and all my data from {product}.",
        "I cannot log in to {product}, it says my account is locked.",
        "How can I add a new member to our team workspace in {product}?",
        "I want to transfer ownership of the workspace to a colleague before {month}.",
        "My username in {product} is wrong, can you rename my account?",
        "How do I turn off the weekly newsletter for my account?",
        "Someone else may have access to my {product} account, please help.",
        "I signed up twice in {month} by mistake, can you merge the two accounts?",
    ],
}


def unique_tickets(rng: random.Random, label: str) -> list[str]:
    """Every distinct ticket text the templates make for a label, in a seeded order."""
    texts = set()
    for template in TICKETS[label]:
        for _ in range(60):
            text = template.format(
                amount=rng.choice(AMOUNTS), month=rng.choice(MONTHS), product=rng.choice(PRODUCTS),
                feature=rng.choice(FEATURES),
            )
            texts.add(text[0].upper() + text[1:])
    ordered = sorted(texts)
    rng.shuffle(ordered)
    return ordered


def main() -> None:
    """Per label, a quarter of the distinct tickets (at most 30) are held out for eval, never trained on."""
    rng = random.Random(7)
    train, evaluation = [], []
    for label in LABELS:
        texts = unique_tickets(rng, label)
        held_out = min(30, len(texts) // 4)
        evaluation += [(text, label) for text in texts[:held_out]]
        train += [(rng.choice(texts[held_out:]), label) for _ in range(120)]
    rng.shuffle(train)
    rng.shuffle(evaluation)
    folder = Path(__file__).parent / "data"
    folder.mkdir(exist_ok=True)
    for name, rows in (("train", train), ("eval", evaluation)):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for index, (text, label) in enumerate(rows):
                record = {"id": f"{name}-{index:04d}", "vars": {"ticket": text, "labels": LABELS}, "completion": label}
                handle.write(json.dumps(record) + "\n")


#: A new product's tickets: longer than the others, mostly hardware bugs, words the model never saw.
SHIFTED = {
    "bug": [
        "After the firmware {version} update the {device} shows error E{code} and the heating stays on all night "
        "even though the schedule says it should be off, so the house is far too warm when we wake up.",
        "The {device} lost its Wi-Fi pairing again this morning and now the display only blinks orange; "
        "I already tried the factory reset described in the installation guide twice without any luck.",
        "Since we mounted the {device} in the hallway the temperature reading is {code} degrees too high, "
        "which makes the boiler switch off early and the bedrooms never reach the set temperature.",
        "The battery of the {device} drains within {code} days, the manual says it should last a whole season; "
        "is this a known hardware fault with the first production batch or did we install it wrongly?",
    ],
    "account": [
        "I moved house and want to register the {device} under my new address, but the app says the serial "
        "number SN-{code}{code} is already linked to another household account and will not let me continue.",
    ],
}
DEVICES = ["smart thermostat", "thermostat hub", "room sensor"]


def shifted(n: int = 60) -> list[tuple[str, str]]:
    rng = random.Random(11)
    rows = []
    for _ in range(n):
        label = "bug" if rng.random() < 0.85 else "account"
        text = rng.choice(SHIFTED[label]).format(
            device=rng.choice(DEVICES), version=f"{rng.randint(2, 4)}.{rng.randint(0, 9)}", code=rng.randint(2, 19)
        )
        rows.append((text[0].upper() + text[1:], label))
    return rows


if __name__ == "__main__":
    main()
    with open(Path(__file__).parent / "data" / "shifted.jsonl", "w", encoding="utf-8") as handle:
        for index, (text, label) in enumerate(shifted()):
            record = {"id": f"shifted-{index:04d}", "vars": {"ticket": text, "labels": LABELS}, "completion": label}
            handle.write(json.dumps(record) + "\n")
