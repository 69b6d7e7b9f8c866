"""Honest evaluation: fixed protocols, one scoring code for every model, baselines and the report."""
