import pytest

from ccrs.eval.response_stats import asks_for_recommendation, recommendation_shares, response_diversity


@pytest.mark.parametrize("text", ["Any suggestions?", "I'm looking for a good comedy", "what should i watch tonight",
                                  "I want something funny, I liked Superbad", "something like Alien please",
                                  "Do you know of any good horror movies?", "Can you recommend a thriller?",
                                  "any other movies like that?", "Seen it. Something newer?",
                                  "I want a movie for date night", "I'm more into comedies like __item__",
                                  "Thanks for that. Any other suggestions?"])
def test_requests_for_a_movie_are_asks(text):
    assert asks_for_recommendation(text)


@pytest.mark.parametrize("text", ["Hi, how are you?", "I have seen that one, it was great", "Thanks, bye!",
                                  "Yes I loved it", "I'm good, thank you", "Thanks for the suggestions! Bye",
                                  "I'll check it out, thank you so much for your recommendations"])
def test_other_turns_are_not(text):
    assert not asks_for_recommendation(text)


def test_response_diversity_counts_whole_responses():
    d = response_diversity(["have you seen __item__ ?"] * 3 + ["__item__ is a good one", "hi  there"])
    assert d["distinct_responses"] == pytest.approx(3 / 5) and d["top_response_share"] == pytest.approx(3 / 5)
    assert d["top_response"] == "have you seen __item__ ?" and d["mean_length"] == pytest.approx((5 * 3 + 5 + 2) / 5)
    with pytest.raises(ValueError):
        response_diversity([])


def test_recommendation_shares_compare_generated_and_human_on_asks_only():
    records = [
        {"context_last": "any suggestions?", "generated": "try __item__", "reference": "how about __item__ ?"},
        {"context_last": "I want something scary", "generated": "hi how are you", "reference": "__item__ is scary"},
        {"context_last": "hello", "generated": "__item__", "reference": "hi"},  # not an ask: not counted
    ]
    s = recommendation_shares(records)
    assert s == {"asked": 2, "recommends_when_asked": 0.5, "human_recommends_when_asked": 1.0}
    assert recommendation_shares(records[2:])["recommends_when_asked"] is None  # no ask: no share
