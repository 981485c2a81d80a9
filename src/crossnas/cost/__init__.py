"""Mapping onto crossbars and the vectorised latency / energy / area model."""
