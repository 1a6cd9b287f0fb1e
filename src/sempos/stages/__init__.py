"""One thin command-line entry point per DAG stage: python -m sempos.stages.<name>."""
