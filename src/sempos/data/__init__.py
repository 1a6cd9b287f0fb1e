"""Datasets: the catalog, verified downloads, prepare, JPEG shards and the streaming loader."""
