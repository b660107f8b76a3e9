"""Voice-command sentences from the home-assistant-intents package (Apache-2.0), labelled by intent.

Each intent in ``home_assistant_intents/data/<lang>.json`` is a set of sentence templates with
alternatives ``(a|b)``, optional parts ``[x]``, expansion rules ``<rule>`` and slots ``{list}``,
parsed by ``hassil``. Full expansion of a template can run to millions of sentences, so each
template is sampled at random (seeded): every alternative, optional part and list value is
drawn uniformly. Slots that Home Assistant fills at run time (``{area}``, ``{name}``,
``{floor}``) and wildcard lists get the small filler lists below; ``{name}`` in a template that
requires a domain (``requires_context: domain: vacuum``) gets names of that domain's devices.

The split is by template: per intent, a quarter of its templates (at least one) are held out,
and test sentences come only from those. A split by sentence would leak, since two samples of
one template differ only in a word or two.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tinyeff.data.dataset import Dataset
from tinyeff.errors import TinyeffError

# Fillers for slots that have no list in the package. English is used for languages without
# their own entry; device names are often English words in any language.
FILLERS: dict[str, dict[str, list[str]]] = {
    "en": {
        "area": ["living room", "kitchen", "bedroom", "bathroom", "office", "garage", "hallway", "basement",
                 "dining room", "kids room", "attic", "garden", "patio", "laundry room", "guest room"],
        "name": ["ceiling light", "floor lamp", "desk lamp", "tv", "front door", "back door", "thermostat",
                 "coffee maker", "heater", "speaker", "garage door", "window blinds", "porch light",
                 "dishwasher", "washing machine", "air purifier", "robot vacuum", "lawn mower"],
        "floor": ["first floor", "second floor", "ground floor", "upstairs", "downstairs", "top floor"],
        "message": ["dinner is ready", "time to go", "the laundry is done", "please come downstairs",
                    "the movie starts in five minutes"],
        "timer_name": ["pizza", "laundry", "eggs", "tea", "pasta", "workout", "bread"],
        "zone": ["home", "work", "school", "the gym", "the office"],
        "todo_list_item": ["milk", "eggs", "bread", "apples", "coffee", "batteries", "dish soap", "call mom"],
        "shopping_list_item": ["milk", "eggs", "bread", "apples", "coffee", "batteries", "dish soap"],
        "search_query": ["jazz", "the beatles", "relaxing music", "the news", "my workout playlist", "rock",
                         "a podcast about history"],
        "timer_command": ["turn off the lights", "start the vacuum", "close the blinds"],
    },
    "de": {
        "area": ["wohnzimmer", "küche", "schlafzimmer", "bad", "büro", "garage", "flur", "keller",
                 "esszimmer", "kinderzimmer", "dachboden", "garten", "terrasse", "gästezimmer"],
        "name": ["deckenlampe", "stehlampe", "schreibtischlampe", "fernseher", "haustür", "thermostat",
                 "kaffeemaschine", "heizung", "lautsprecher", "garagentor", "rollladen", "spülmaschine",
                 "waschmaschine", "luftreiniger", "staubsauger", "rasenmäher"],
        "floor": ["erdgeschoss", "obergeschoss", "oben", "unten", "dachgeschoss", "erster stock"],
        "message": ["das essen ist fertig", "wir müssen los", "die wäsche ist fertig", "bitte runterkommen"],
        "timer_name": ["pizza", "wäsche", "eier", "tee", "nudeln", "training"],
        "zone": ["zuhause", "arbeit", "schule", "fitnessstudio"],
        "todo_list_item": ["milch", "eier", "brot", "äpfel", "kaffee", "batterien", "spülmittel"],
        "shopping_list_item": ["milch", "eier", "brot", "äpfel", "kaffee", "batterien", "spülmittel"],
        "search_query": ["jazz", "die beatles", "entspannende musik", "nachrichten", "rockmusik"],
        "timer_command": ["licht ausschalten", "staubsauger starten"],
    },
}

# Device names by Home Assistant domain, for templates that require one (a vacuum command names a
# vacuum, as Home Assistant only matches entities of that domain); "name" above serves the rest.
DOMAIN_NAMES: dict[str, dict[str, list[str]]] = {
    "en": {
        "light": ["ceiling light", "floor lamp", "desk lamp", "porch light", "kitchen lights", "reading lamp"],
        "switch": ["coffee maker", "dishwasher", "washing machine", "heater", "christmas lights"],
        "fan": ["ceiling fan", "desk fan", "bathroom fan", "air purifier"],
        "cover": ["window blinds", "garage door", "curtains", "shades", "awning"],
        "valve": ["water valve", "sprinkler valve", "gas valve"],
        "lock": ["front door", "back door", "garage door lock"],
        "climate": ["thermostat", "air conditioner", "heat pump"],
        "media_player": ["tv", "speaker", "kitchen speaker", "soundbar", "radio", "stereo"],
        "vacuum": ["robot vacuum", "vacuum", "roomba", "vacuum cleaner"],
        "lawn_mower": ["lawn mower", "mower", "robot mower"],
        "scene": ["movie night", "good morning", "romantic dinner", "party mode"],
        "script": ["morning routine", "bedtime", "leave home"],
    },
    "de": {
        "light": ["deckenlampe", "stehlampe", "schreibtischlampe", "leselampe"],
        "cover": ["rollladen", "jalousie", "garagentor", "markise"],
        "media_player": ["fernseher", "lautsprecher", "radio", "soundbar"],
        "vacuum": ["staubsauger", "saugroboter"],
        "lawn_mower": ["rasenmäher", "mähroboter"],
        "climate": ["thermostat", "klimaanlage", "heizung"],
        "lock": ["haustür", "hintertür"],
    },
}

MIN_TEMPLATES = 4  # intents with fewer templates cannot give both splits an unseen template
TRAIN_PER_INTENT = 400
TEST_PER_INTENT = 100


def _data_file(lang: str) -> Path:
    import home_assistant_intents

    path = Path(home_assistant_intents.__file__).parent / "data" / f"{lang}.json"
    if not path.exists():
        langs = sorted(p.stem for p in path.parent.glob("*.json"))
        raise TinyeffError(f"home-assistant-intents has no language '{lang}'; choose one of {', '.join(langs)}")
    return path


class _Sampler:
    """Draws one random sentence from a hassil expression tree."""

    def __init__(self, rng: np.random.Generator, lists: dict, rules: dict, fillers: dict[str, list[str]]):
        self.rng, self.lists, self.rules, self.fillers = rng, lists, rules, fillers

    def _pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def sample(self, expr) -> str:
        from hassil import expression as ex
        from hassil.intents import RangeSlotList, TextSlotList

        if isinstance(expr, ex.TextChunk):
            return expr.original_text if expr.original_text is not None else expr.text
        if isinstance(expr, ex.Alternative):
            return self.sample(self._pick(expr.items))
        if isinstance(expr, ex.Permutation):
            order = self.rng.permutation(len(expr.items))
            return " ".join(self.sample(expr.items[i]) for i in order)
        if isinstance(expr, ex.Sequence):
            return "".join(self.sample(item) for item in expr.items)
        if isinstance(expr, ex.RuleReference):
            return self.sample(self.rules[expr.rule_name].expression)
        if isinstance(expr, ex.ListReference):
            slot = self.lists.get(expr.list_name)
            if isinstance(slot, TextSlotList) and slot.values:
                return self.sample(self._pick(slot.values).text_in)
            if isinstance(slot, RangeSlotList):
                return str(self._pick(range(slot.start, slot.stop + 1, slot.step)))
            return self._pick(self.fillers.get(expr.list_name) or self.fillers["name"])
        raise TypeError(f"unexpected hassil expression {type(expr).__name__}")


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def load_intents(*, lang: str = "en", seed: int = 0, min_templates: int = MIN_TEMPLATES) -> Dataset:
    """Labelled sentences of every intent with at least MIN_TEMPLATES templates, split by template."""
    from hassil.intents import Intents

    intents = Intents.from_dict(json.loads(_data_file(lang).read_text(encoding="utf-8")))
    fillers = FILLERS.get(lang, FILLERS["en"])
    rng = np.random.default_rng(seed)

    domain_names = DOMAIN_NAMES.get(lang, {})

    # (template expression, local lists, local rules, fillers) for every template of every intent
    per_intent: dict[str, list[tuple]] = {}
    for name in sorted(intents.intents):
        for data in intents.intents[name].data:
            rules = {**intents.expansion_rules, **data.expansion_rules}
            lists = {**intents.slot_lists, **data.slot_lists}
            domains = (data.requires_context or {}).get("domain") or []
            domains = [domains] if isinstance(domains, str) else list(domains)
            names = [n for d in domains for n in domain_names.get(d, [])]
            template_fillers = {**fillers, "name": names} if names else fillers
            for sentence in data.sentences:
                per_intent.setdefault(name, []).append((sentence.expression, lists, rules, template_fillers))
    chosen = [n for n, t in per_intent.items() if len(t) >= min_templates]
    if len(chosen) < 2:
        raise TinyeffError(
            f"language '{lang}' has fewer than 2 intents with {min_templates} or more templates; "
            "lower --min-templates or choose another language"
        )

    split: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    train_groups: list[int] = []  # the template each training sentence came from, numbered across intents
    n_templates = 0
    for label, name in enumerate(chosen):
        templates = per_intent[name]
        order = rng.permutation(len(templates))
        n_test = max(1, len(templates) // 4)
        parts = {"test": order[:n_test], "train": order[n_test:]}
        for part, quota in (("train", TRAIN_PER_INTENT), ("test", TEST_PER_INTENT)):
            idx = parts[part]
            per_template = max(3, -(-quota // len(idx)))
            seen: dict[str, int] = {}  # sentence -> the first template that made it
            for i in idx:
                expr, lists, rules, template_fillers = templates[i]
                sampler = _Sampler(rng, lists, rules, template_fillers)
                for _ in range(per_template):
                    seen.setdefault(_normalize(sampler.sample(expr)), n_templates + int(i))
            texts = sorted(seen)
            if len(texts) > quota:
                texts = [texts[j] for j in np.sort(rng.choice(len(texts), quota, replace=False))]
            split[part][0].extend(texts)
            split[part][1].extend([label] * len(texts))
            if part == "train":
                train_groups.extend(seen[t] for t in texts)
        n_templates += len(templates)

    return Dataset(
        name=f"intents-{lang}",
        kind="text",
        x_train=np.array(split["train"][0]),
        y_train=np.array(split["train"][1], dtype=np.int32),
        x_test=np.array(split["test"][0]),
        y_test=np.array(split["test"][1], dtype=np.int32),
        labels=tuple(chosen),
        frontend={"type": "text", "lang": lang, "split": "by template", "seed": seed},
        train_groups=np.array(train_groups, dtype=np.int32),
    )
