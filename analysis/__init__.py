"""Analysis of sweep results: reads result folders only."""
