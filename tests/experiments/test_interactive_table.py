from ccrs.experiments.interactive_table import build_table, format_table_markdown, plot_success


def _rec(user, cid, success_round, ranked_first, targets=(1,)):
    rounds = [{"ranked": ranked_first, "ms": 10.0}] + [{"ranked": [9], "ms": 10.0}] * ((success_round or 3) - 1)
    return {"user_id": user, "conversation_id": cid, "targets": list(targets), "rounds": rounds,
            "success_round": success_round, "error": None, "clues": [{"understood": True}], "session_ms": 10.0 * len(rounds)}


def test_pooled_table_paired_tests_and_plot(tmp_path):
    a = {0: [_rec(u, f"c{u}", 1, [1, 2]) for u in range(6)], 1: [_rec(10 + u, f"d{u}", 2, [3]) for u in range(6)]}
    b = {0: [_rec(u, f"c{u}", None, [3, 4]) for u in range(6)], 1: [_rec(10 + u, f"d{u}", None, [3]) for u in range(6)]}
    report = build_table({"good": a, "bad": b}, rounds=3, comparisons=[("good", "bad")], n_resamples=2000)
    good, bad = report["rows"]["good"], report["rows"]["bad"]
    assert good["success_at"] == [0.5, 1.0, 1.0] and bad["success_at"] == [0.0, 0.0, 0.0]
    assert good["mean_rounds_to_success"] == 1.5 and good["per_fold_success_at_T"] == {"0": 1.0, "1": 1.0}
    c = report["comparisons"]["good vs bad"]
    assert c["sessions"] == 12 and c["success"]["diff"] == 1.0 and c["success"]["p_user_permutation"] < 0.01
    assert c["first_round_topk_differs"] == 0.5  # fold 1's first lists are equal
    md = format_table_markdown(report)
    assert "| good | 12 | 12 |" in md and "good vs bad" in md
    plot_success(report, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_subsets_repeat_summaries_and_tests_on_their_sessions_only():
    a = {0: [_rec(u, f"c{u}", 1, [1, 2]) for u in range(6)]}
    b = {0: [_rec(u, f"c{u}", 1 if u < 3 else None, [1] if u < 3 else [5]) for u in range(6)]}
    first = {(u, f"c{u}") for u in range(3)}
    report = build_table({"a": a, "b": b}, rounds=3, comparisons=[("a", "b")], n_resamples=500,
                         subsets={"first": first, "rest": {(u, f"c{u}") for u in range(3, 6)}})
    assert report["rows"]["b"]["success_at"][0] == 0.5
    sub = report["subsets"]
    assert sub["first"]["rows"]["b"]["sessions"] == 3 and sub["first"]["rows"]["b"]["success_at"][0] == 1.0
    assert sub["rest"]["rows"]["b"]["success_at"][-1] == 0.0
    assert sub["first"]["comparisons"]["a vs b"]["success"]["diff"] == 0.0
    assert sub["rest"]["comparisons"]["a vs b"]["success"]["diff"] == 1.0
    md = format_table_markdown(report)
    assert "**first**" in md and "**rest**" in md and "| a vs b | 3 |" in md
