"""results/samples.md: seeded test contexts, speakers labelled, slots filled, every row side by side."""

from ccrs.data.dataset import PreparedDataset
from ccrs.data.gen_examples import gen_samples
from ccrs.experiments.samples_page import ATTRIBUTION, draw_samples, fill_turn, samples_markdown


def test_fill_turn_names_the_movies_in_order_and_keeps_unknown_slots():
    names = {4: "Alien (1979)", 7: "Heat"}
    assert fill_turn("try __item__ or __item__ !", [4, 7], names) == "try *Alien (1979)* or *Heat* !"
    assert fill_turn("try __item__ or __item__", [4], names) == "try *Alien (1979)* or __item__"
    assert fill_turn("no movie", [], names) == "no movie"


def _records(samples, fold, text):
    return [{"fold": fold, "sample_id": s.sample_id, "conversation_id": s.conversation_id, "user_id": s.user_id,
             "turn_index": s.turn_index, "generated": text, "response": f"{text} {s.sample_id}"} for s in samples]


def test_samples_page_is_seeded_and_shows_context_human_and_every_row(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    samples = gen_samples(ds)[:30]
    rows = {"kbrd_gen": _records(samples, 0, "have you seen __item__ ?"),
            "ccrs": _records(samples[:20], 0, "you might like __item__")}  # the page uses what both answered
    keys = draw_samples(rows, 5, seed=1)
    assert keys == draw_samples(rows, 5, seed=1) != draw_samples(rows, 5, seed=2)
    assert len(keys) == 5 and all(k[1] < samples[20].sample_id for k in keys)
    page = samples_markdown(rows, ds, n=5, seed=1, command="python -m ray_jobs.gen_table ...")
    assert page.count("\n## ") == 5 and ATTRIBUTION in page and "python -m ray_jobs.gen_table" in page
    assert page.count("| **human** |") == 5
    for _, sid in keys:
        assert f"| kbrd_gen | have you seen __item__ ? {sid} |" in page and f"| ccrs     | you might like __item__ {sid} |" in page
    assert "> **Seeker:**" in page or "> **Recommender:**" in page
    movies = ds.table("movies").to_pydict()
    assert all(n.strip() for n in movies["name"])  # synthetic movies all have names, so every slot is named
    quoted = [line for line in page.splitlines() if line.startswith(("> **", "| **human**"))]
    assert quoted and not any("__item__" in line for line in quoted)  # context and human turns: slots named
    assert any(f"*{' '.join(n.split())}*" in page for n in movies["name"])
    assert samples_markdown(rows, ds, n=5, seed=1) == samples_markdown(rows, ds, n=5, seed=1)
