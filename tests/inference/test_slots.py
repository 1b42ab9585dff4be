from ccrs.inference.slots import display_name, fill_slots

NAMES = {0: "Alien", 1: "Heat", 2: "Up", 3: "Big"}


def test_slots_take_the_best_unmentioned_items_in_order():
    out = fill_slots("try __item__ or __item__ !".split(), "__item__", ranked_items=[1, 0, 2, 3], mentioned=[1],
                     names=NAMES)
    assert out.items == [0, 2] and out.text == "Try Alien or Up!"


def test_no_item_twice_and_placeholder_kept_when_ranking_runs_out():
    out = fill_slots(["__item__", "__item__", "__item__"], "__item__", [2, 2, 3], mentioned=[3], names=NAMES)
    assert out.items == [2] and out.text == "Up __item__ __item__"


def test_display_name_drops_dbpedia_suffixes():
    assert display_name("Alien (1979 film)") == "Alien"
    assert display_name("Heat (film)") == "Heat"
    assert display_name("Up (2009)") == "Up"
    assert display_name("Se7en") == "Se7en"
