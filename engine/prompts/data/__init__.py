"""Vocabularies and lists of the prompt recipes (plain Python data, no work at import)."""
