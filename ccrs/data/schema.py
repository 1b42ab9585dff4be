"""Arrow schemas of the prepared dataset's tables (schema version in ``manifest.json``).

Entity ids are one id space: the KG's own entity ids first, then isolated entities for movies with no
KG node. Items (rankable movies) are the entities with ``is_item``; ``item_index`` numbers them
0..n_items-1 in entity-id order, the column order of a model's item scores.
"""

import pyarrow as pa

SCHEMA_VERSION = 2  # 2: movie_feedback (ReDial's questionnaire)

_ids = pa.list_(pa.int64())

TABLES: dict[str, pa.Schema] = {
    "entities": pa.schema(
        [
            ("id", pa.int64()),
            ("uri", pa.string()),
            ("name", pa.string()),
            ("is_item", pa.bool_()),
            ("item_index", pa.int64()),  # -1 for non-items
            ("degree", pa.int64()),  # undirected KG degree without self-loops
        ]
    ),
    "relations": pa.schema([("id", pa.int64()), ("name", pa.string()), ("n_edges", pa.int64())]),
    "kg_edges": pa.schema([("head", pa.int64()), ("relation", pa.int64()), ("tail", pa.int64())]),
    "movies": pa.schema(
        [
            ("movie_id", pa.int64()),  # ReDial @movieId
            ("name", pa.string()),
            ("entity_id", pa.int64()),
            ("link_method", pa.string()),  # id2entity | name | none (isolated entity)
            ("n_mentions", pa.int64()),  # nbMentions of movies_with_mentions.csv (0 if absent)
        ]
    ),
    "conversations": pa.schema(
        [
            ("conversation_id", pa.string()),
            ("seeker_id", pa.int64()),
            ("recommender_id", pa.int64()),
            ("source_file", pa.string()),
            ("is_test_side", pa.bool_()),
            ("standard_split", pa.string()),
            ("n_turns", pa.int32()),
        ]
    ),
    "turns": pa.schema(
        [
            ("conversation_id", pa.string()),
            ("turn_index", pa.int32()),
            ("role", pa.string()),  # seeker | recommender
            ("sender_id", pa.int64()),
            ("text", pa.string()),  # movie mentions replaced by the item placeholder
            ("movie_ids", _ids),  # ReDial ids, one per placeholder, in order
            ("item_ids", _ids),  # entity ids of the known movies, deduplicated
            ("entity_ids", _ids),  # linked non-movie entity ids, deduplicated
        ]
    ),
    "tasks": pa.schema(
        [
            ("user_id", pa.int64()),
            ("fold", pa.int32()),  # -1: single conversation, train pool of every fold
            ("split", pa.string()),  # for manifest["config"]["fold"]
            ("n_conversations", pa.int32()),
            ("support_conversation_ids", pa.list_(pa.string())),
            ("query_conversation_ids", pa.list_(pa.string())),
        ]
    ),
    "movie_feedback": pa.schema(
        [
            ("conversation_id", pa.string()),
            ("movie_id", pa.int64()),  # ReDial @movieId
            ("entity_id", pa.int64()),  # the movie's entity (see ``movies``)
            ("suggested", pa.int8()),  # 1: the recommender proposed it in this conversation
            ("seen", pa.int8()),  # 0 no, 1 yes, 2 did not say
            ("liked", pa.int8()),  # 0 no, 1 yes, 2 did not say
            ("answered_by", pa.string()),  # seeker (initiatorQuestions) | recommender (respondentQuestions)
        ]
    ),
    "rec_samples": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("conversation_id", pa.string()),
            ("user_id", pa.int64()),
            ("turn_index", pa.int32()),
            ("label", pa.int64()),  # entity id of an item
            ("context_entity_ids", _ids),
            ("context_entity_turns", pa.list_(pa.int32())),
            ("label_in_context", pa.bool_()),
        ]
    ),
}
