"""Raw ReDial + DBpedia → prepared dataset (Parquet tables + manifest), and the entity linker."""
