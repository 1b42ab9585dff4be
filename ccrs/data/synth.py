"""``ccrs data synth``: a small synthetic raw directory in the official ReDial schema.

The layout mirrors ``../shared/data/redial``: ``dialogs/train_data.jsonl`` and ``dialogs/test_data.jsonl``
(disjoint workers, like the official files), ``movies_with_mentions.csv``, and the same DBpedia-style
KG in both formats (``kg_unicrs_crslab/`` with named relations, ``kg_kgsf_kbrd/`` with relation ids and
``id2entity.json``). Each synthetic user prefers one relation type (director, starring or genre) and
one value of it, and the movies in that user's conversations share that value, so a user-aware model
has signal to find. About 10% of movies have no ``id2entity`` link (exercising the name/year
fallback) and about 2% have no KG node at all (isolated items). Half of the train conversations have
consecutive same-speaker messages already merged (``_turns_merged``), the other half not, as in the
shared data.

The KG is sized so every relation keeps more than 1000 directed edges, CRSLab's filter threshold:
the default config prepares it unchanged.

``taste`` chooses how users pick movies:

``visible`` (default; the fixture of most tests)
    As above: the seeker names the shared value ("movies directed by X"), so the text carries it.
``planted``
    A hidden, user-specific taste that only the user's own conversations reveal. Each user has one
    relation type (director, starring or genre, in turn). In every conversation the seeker mentions
    one random movie A in neutral words, and the recommender answers in one turn with three movies
    that share the user's relation with A (A's director for a director user, one of A's actors for
    a starring user, A's genre for a genre user). The context of every sample is A alone, which is
    linked to all three relations: a model that does not know the user cannot tell which one
    matters; the user's support conversations show it.
``control``
    The same conversations with the relation drawn afresh per conversation: no user-level signal,
    identical marginals. A customized model must be no worse than a plain one here.

``taste_strength`` s (``planted`` only) weakens the signal: each conversation follows the user's
relation with probability s and a relation drawn afresh otherwise (s = 1: every conversation, the
default; s = 0: the control). Real users are somewhere in between: it says how strong a taste
customization needs.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

RESOURCE = "<http://dbpedia.org/resource/{}>"
ONTOLOGY = "<http://dbpedia.org/ontology/{}>"
RELATIONS = ("director", "starring", "genre")
GENRES = ("Horror", "Comedy", "Science fiction", "Romance", "Thriller", "Animation", "Documentary", "Western")
_FIRST = ("Ava", "Bruno", "Cleo", "Dario", "Elsa", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lars",
          "Mira", "Nils", "Orla", "Pavel", "Quinn", "Rosa", "Sven", "Tilda")
_LAST = ("Lindqvist", "Marchetti", "Okonkwo", "Varga", "Haddad", "Nakamura", "Brandt", "Quiroga", "Sorensen",
         "Petrakis", "Oyelaran", "Castellano", "Whitcombe", "Dvorak", "Ferreira")
_TITLE_A = ("Midnight", "Silver", "Broken", "Hidden", "Electric", "Crimson", "Frozen", "Distant", "Savage", "Golden",
            "Silent", "Burning", "Velvet", "Hollow", "Wild", "Paper", "Glass", "Iron", "Lunar", "Neon")
_TITLE_B = ("Harbor", "Protocol", "Orchard", "Frontier", "Lantern", "Meridian", "Cascade", "Station", "Garden",
            "Empire", "Horizon", "Circuit", "Canyon", "Voyage", "Signal", "Kingdom", "Engine", "River", "Parade")


@dataclass(frozen=True)
class SynthSpec:
    seed: int = 0
    n_users: int = 40
    conversations_per_user: int = 4
    n_movies: int = 520
    n_directors: int = 26
    n_actors: int = 40
    test_user_fraction: float = 0.2
    no_id2entity_fraction: float = 0.1
    no_kg_node_fraction: float = 0.02
    #: ``visible`` | ``planted`` | ``control`` (module docstring).
    taste: str = "visible"
    n_genres: int = len(GENRES)
    #: ``planted`` only: the chance that a conversation follows the user's relation (module docstring).
    taste_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.taste not in TASTES:
            raise ValueError(f"taste must be one of {TASTES}, got {self.taste!r}")
        if not 1 <= self.n_genres <= len(GENRES):
            raise ValueError(f"n_genres must be in [1, {len(GENRES)}], got {self.n_genres}")
        if not 0.0 <= self.taste_strength <= 1.0:
            raise ValueError(f"taste_strength must be in [0, 1], got {self.taste_strength}")


TASTES = ("visible", "planted", "control")


def _uri_token(name: str) -> str:
    return name.replace(" ", "_")


def write_synthetic_raw(out: str | Path, spec: SynthSpec = SynthSpec(), kg_formats: tuple[str, ...] = ("crslab", "kgsf")) -> Path:
    rng = random.Random(spec.seed)
    out = Path(out)
    (out / "dialogs").mkdir(parents=True, exist_ok=True)

    people = [f"{f} {last}" for last in _LAST for f in _FIRST]
    rng.shuffle(people)
    directors = people[: spec.n_directors]
    actors = people[spec.n_directors : spec.n_directors + spec.n_actors]
    titles = [f"{p}{a} {b}" for p in ("", "The ") for a in _TITLE_A for b in _TITLE_B]
    rng.shuffle(titles)
    if spec.n_movies > len(titles):
        raise ValueError(f"at most {len(titles)} synthetic movies")

    movies = []  # dicts: movie_id, title, year, director, actors, genre
    for i in range(spec.n_movies):
        movies.append(
            {
                "movie_id": 100000 + i,
                "title": titles[i],
                "year": 1970 + rng.randrange(50),
                "director": directors[i % len(directors)],
                "starring": [actors[i % len(actors)], actors[(i * 7 + 3) % len(actors)]],
                "genre": [f"{GENRES[i % spec.n_genres]} film"],
            }
        )

    # KG entities: movies (except the no-KG-node ones), people, genres.
    no_node = {m["movie_id"] for m in rng.sample(movies, int(spec.n_movies * spec.no_kg_node_fraction))}
    no_link = {m["movie_id"] for m in rng.sample([m for m in movies if m["movie_id"] not in no_node],
                                                 int(spec.n_movies * spec.no_id2entity_fraction))}
    entity2id: dict[str, int] = {}

    def ent(uri: str) -> int:
        return entity2id.setdefault(uri, len(entity2id))

    movie_uri = {m["movie_id"]: RESOURCE.format(_uri_token(f"{m['title']} ({m['year']} film)")) for m in movies}
    triples = []  # (head, relation name, tail)
    for m in movies:
        if m["movie_id"] in no_node:
            continue
        h = ent(movie_uri[m["movie_id"]])
        triples.append((h, "director", ent(RESOURCE.format(_uri_token(m["director"])))))
        for a in m["starring"]:
            triples.append((h, "starring", ent(RESOURCE.format(_uri_token(a)))))
        for g in m["genre"]:
            triples.append((h, "genre", ent(RESOURCE.format(_uri_token(g)))))
    movie_entity_ids = sorted(entity2id[movie_uri[m["movie_id"]]] for m in movies if m["movie_id"] not in no_node)

    if "crslab" in kg_formats:
        d = out / "kg_unicrs_crslab"
        d.mkdir(exist_ok=True)
        rel2id = {ONTOLOGY.format(r): i for i, r in enumerate(RELATIONS)}
        rel2id["self_loop"] = len(RELATIONS)
        adj: dict[str, list] = {}
        for h, r, t in triples:
            adj.setdefault(str(h), [[rel2id["self_loop"], h]]).append([rel2id[ONTOLOGY.format(r)], t])
        _dump(d / "dbpedia_subkg.json", adj)
        _dump(d / "entity2id.json", entity2id)
        _dump(d / "relation2id.json", rel2id)
        _dump(d / "relation_set.json", [ONTOLOGY.format(r) for r in RELATIONS])
        _dump(d / "item_ids.json", movie_entity_ids)
    d = out / "kg_kgsf_kbrd"
    d.mkdir(exist_ok=True)
    if "kgsf" in kg_formats:
        rel_ids = {"director": 5, "starring": 9, "genre": 2}
        adj = {}
        for h, r, t in triples:
            adj.setdefault(str(h), []).append([rel_ids[r], t])
        _dump(d / "subkg.json", adj)
        _dump(d / "entity2entityId.json", entity2id)
        _dump(d / "movie_ids.json", movie_entity_ids)
    # The ReDial movieId → DBpedia URI map (KGSF's id2entity), used with either KG format.
    _dump(d / "id2entity.json", {str(m["movie_id"]): (None if m["movie_id"] in no_link else movie_uri[m["movie_id"]])
                                 for m in movies})

    with open(out / "movies_with_mentions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["movieId", "movieName", "nbMentions"])
        for m in movies:
            w.writerow([m["movie_id"], f"{m['title']} ({m['year']})", rng.randrange(1, 50)])

    # Users and conversations.
    by_value: dict[tuple[str, str], list[dict]] = {}
    for m in movies:
        by_value.setdefault(("director", m["director"]), []).append(m)
        for a in m["starring"]:
            by_value.setdefault(("starring", a), []).append(m)
        for g in m["genre"]:
            by_value.setdefault(("genre", g), []).append(m)
    n_test = max(1, int(spec.n_users * spec.test_user_fraction))
    conv_id = 20000
    # Written as generated (a million conversations never sit in memory).
    files = {name: open(out / "dialogs" / name, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
             for name in ("train_data.jsonl", "test_data.jsonl")}
    # In the planted/control modes only movies with a KG node are used: the signal lives in the KG.
    in_kg = [m for m in movies if m["movie_id"] not in no_node]
    for u in range(spec.n_users):
        is_test = u >= spec.n_users - n_test
        seeker = (2000 if is_test else 1) + u
        relation = RELATIONS[u % len(RELATIONS)]
        if spec.taste != "visible":
            for _ in range(spec.conversations_per_user):
                conv_id += 1
                recommender = (3000 if is_test else 500) + rng.randrange(30)
                # (no draw at strength 1: the default data stays what it was)
                own = spec.taste == "planted" and (spec.taste_strength >= 1.0 or rng.random() < spec.taste_strength)
                rel = relation if own else RELATIONS[rng.randrange(len(RELATIONS))]
                conv = _hidden_taste_conversation(str(conv_id), seeker, recommender, rel, in_kg, by_value, rng)
                files["test_data.jsonl" if is_test else "train_data.jsonl"].write(json.dumps(conv) + "\n")
            continue
        values = sorted(v for (r, v) in by_value if r == relation)
        value = values[rng.randrange(len(values))]
        pool = by_value[(relation, value)]
        for c in range(spec.conversations_per_user):
            conv_id += 1
            recommender = (3000 if is_test else 500) + rng.randrange(30)
            picks = rng.sample(pool, min(4, len(pool)))
            merged = (not is_test) and c % 2 == 0
            conv = _conversation(str(conv_id), seeker, recommender, relation, value, picks, merged, rng)
            files["test_data.jsonl" if is_test else "train_data.jsonl"].write(json.dumps(conv) + "\n")
    for f in files.values():
        f.close()
    (out / "SOURCES.md").write_text(
        f"Synthetic ReDial-schema data written by `ccrs data synth` (seed {spec.seed}). Not real dialogues.\n"
    )
    return out


def _hidden_taste_conversation(cid, seeker, recommender, relation, movies, by_value, rng) -> dict:
    """One seed movie in neutral words, then one recommender turn with three movies that share
    ``relation`` with it (never named in the text): see the module docstring (``planted``)."""
    while True:
        a = movies[rng.randrange(len(movies))]
        value = a["director"] if relation == "director" else rng.choice(a[relation])
        pool = [m for m in by_value[(relation, value)] if m["movie_id"] != a["movie_id"] and m in movies]
        if len(pool) >= 3:
            break
    picks = rng.sample(pool, 3)
    msgs = [
        (seeker, "Hi there!"),
        (seeker, f"I really enjoyed @{a['movie_id']} last week. What should I watch next?"),
        (recommender, f"You might like @{picks[0]['movie_id']} or @{picks[1]['movie_id']} , "
                      f"and @{picks[2]['movie_id']} is worth a try too."),
        (seeker, "Thanks, I will check them out. Bye!"),
    ]
    messages = [{"senderWorkerId": s, "text": t, "messageId": 900000 + int(cid) * 10 + i, "timeOffset": 10 * i}
                for i, (s, t) in enumerate(msgs)]
    mentions = {str(m["movie_id"]): f"{m['title']} ({m['year']})" for m in (a, *picks)}
    questions = {k: {"suggested": int(k != str(a["movie_id"])), "seen": 0, "liked": 1} for k in mentions}
    return {"conversationId": cid, "initiatorWorkerId": seeker, "respondentWorkerId": recommender,
            "movieMentions": mentions, "initiatorQuestions": questions, "respondentQuestions": questions,
            "messages": messages}


def _phrase(relation: str, value: str) -> str:
    if relation == "director":
        return f"movies directed by {value}"
    if relation == "starring":
        return f"anything with {value} in it"
    return f"a good {value.removesuffix(' film').lower()} movie"


def _conversation(cid, seeker, recommender, relation, value, picks, merged, rng) -> dict:
    a, b, c, d = (picks + picks)[:4]
    if rng.random() < 0.3:
        d = b  # recommenders often re-mention a movie: exercises the "dedup" metric variant
    msgs = [
        (seeker, "Hi there!"),
        (seeker, f"I am looking for {_phrase(relation, value)}. I loved @{a['movie_id']}"),
        (recommender, f"Hello! Have you seen @{b['movie_id']} ? It is {_phrase(relation, value)} too."),
        (seeker, rng.choice(["Yes, I have seen it.", "No, not yet.", "I liked that one."])),
        (recommender, f"Then you might like @{c['movie_id']}"),
        (recommender, f"or maybe @{d['movie_id']}"),
        (seeker, "Thanks, I will check them out. Bye!"),
    ]
    if merged:
        joined: list[list] = []
        for sender, text in msgs:
            if joined and joined[-1][0] == sender:
                joined[-1][1] += " " + text
            else:
                joined.append([sender, text])
        messages = [{"senderWorkerId": s, "text": t} for s, t in joined]
    else:
        messages = [{"senderWorkerId": s, "text": t, "messageId": 900000 + int(cid) * 10 + i, "timeOffset": 10 * i}
                    for i, (s, t) in enumerate(msgs)]
    mentions = {str(m["movie_id"]): f"{m['title']} ({m['year']})" for m in (a, b, c, d)}
    questions = {k: {"suggested": int(k != str(a["movie_id"])), "seen": 0, "liked": 1} for k in mentions}
    conv = {
        "conversationId": cid,
        "initiatorWorkerId": seeker,
        "respondentWorkerId": recommender,
        "movieMentions": mentions,
        "initiatorQuestions": questions,
        "respondentQuestions": questions,
        "messages": messages,
    }
    if merged:
        conv["_turns_merged"] = True
    return conv


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, sort_keys=True))
