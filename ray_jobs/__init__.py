"""Entry points for `ray job submit` (thin drivers around `ccrs`): `train_recommender`, `rec_meta_table`."""
