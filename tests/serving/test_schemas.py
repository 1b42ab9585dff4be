"""Request validation: every bad input is rejected naming the field; good input passes, stripped."""

import json

import pytest
from pydantic import ValidationError

from ccrs.serving.schemas import ServeLimits, api_models, field_errors

M = api_models(ServeLimits(max_turns=3, max_turn_chars=20, max_k=5, default_k=2, max_conversations=2))
GOOD = {"user_id": 7, "turns": [{"role": "seeker", "text": "  I like horror  "}], "k": 3}


def _bad(body: dict | str, model=M.RecommendRequest) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        if isinstance(body, str):
            model.model_validate_json(body)
        else:
            model.model_validate(body)
    return field_errors(exc.value)


def test_good_request_is_stripped_and_defaults_apply():
    req = M.RecommendRequest.model_validate(GOOD)
    assert req.turns[0].text == "I like horror" and req.k == 3
    req = M.RecommendRequest.model_validate({"turns": GOOD["turns"]})
    assert req.user_id is None and req.k == 2 and req.attention is False


@pytest.mark.parametrize("body, field", [
    ({"turns": []}, "turns"),                                                    # no turn
    ({"turns": [{"role": "seeker", "text": "x"}] * 4}, "turns"),                 # too many turns
    ({"turns": [{"role": "seeker", "text": "   "}]}, "turns.0.text"),            # empty after strip
    ({"turns": [{"role": "seeker", "text": "y" * 21}]}, "turns.0.text"),         # too long
    ({"turns": [{"role": "bot", "text": "hi"}]}, "turns.0.role"),                # unknown role
    ({"turns": [{"text": "hi"}]}, "turns.0.role"),                               # missing role
    ({"turns": [{"role": "seeker"}]}, "turns.0.text"),                           # missing text
    ({"turns": [{"role": "seeker", "text": 5}]}, "turns.0.text"),                # wrong type
    ({"turns": "hello"}, "turns"),                                               # not a list
    ({"turns": GOOD["turns"], "k": 0}, "k"),                                     # k below bounds
    ({"turns": GOOD["turns"], "k": 6}, "k"),                                     # k above bounds
    ({"turns": GOOD["turns"], "k": "3"}, "k"),                                   # no coercion
    ({"turns": GOOD["turns"], "k": 2.5}, "k"),                                   # not an integer
    ({"turns": GOOD["turns"], "user_id": -1}, "user_id"),                        # negative id
    ({"turns": GOOD["turns"], "user_id": "abc"}, "user_id"),                     # wrong type
    ({"turns": GOOD["turns"], "extra": 1}, "extra"),                             # unknown field
    ({"turns": [{"role": "seeker", "text": "hi", "x": 1}]}, "turns.0.x"),        # unknown nested field
    ({}, "turns"),                                                               # missing turns
])
def test_bad_requests_name_the_field(body, field):
    errors = _bad(body)
    assert any(e.split(":")[0] == field or e.startswith(field + ".") for e in errors), errors


def test_malformed_json_and_adaptation_bodies():
    assert _bad('{"turns": [')[0].startswith("body: Invalid JSON")  # malformed JSON: named as the body
    good = {"conversations": [[{"role": "seeker", "text": "hi"}, {"role": "recommender", "text": "try this"}]]}
    assert len(M.AdaptRequest.model_validate(good).conversations) == 1
    assert any(e.startswith("conversations") for e in _bad({"conversations": []}, M.AdaptRequest))
    assert any(e.startswith("conversations") for e in _bad({"conversations": [good["conversations"][0]] * 3},
                                                             M.AdaptRequest))
    assert any(e.startswith("conversations.0") for e in _bad({"conversations": [[]]}, M.AdaptRequest))
    schema = M.RecommendRequest.model_json_schema()  # what the OpenAPI document shows
    assert schema["properties"]["k"]["maximum"] == 5 and json.dumps(schema)


def test_limits_are_checked():
    with pytest.raises(ValueError):
        ServeLimits(max_k=3, default_k=5)
    with pytest.raises(ValueError):
        ServeLimits(max_turns=0)
