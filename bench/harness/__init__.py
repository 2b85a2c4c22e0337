"""Parts of bench/run that stand on their own: the throwaway PostgreSQL
server (postgres.py) and release builds of older revisions (baseline.py).
bench/run is the entry point and holds the scenarios."""
