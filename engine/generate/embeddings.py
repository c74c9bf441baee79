"""Text-embedding cache keyed by prompt: plans repeat prompts heavily (one template per class,
one empty negative prompt), so the text encoder runs once per distinct prompt.
"""
from __future__ import annotations

from collections import OrderedDict


class EmbeddingCache:
    """LRU cache ``prompt -> (77, D) embedding``; ``enabled=False`` encodes every time."""

    def __init__(self, tokenizer, text_encoder, device, dtype, max_entries: int = 4096,
                 enabled: bool = True):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.device = device
        self.dtype = dtype
        self.max_entries = max_entries
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[str, object] = OrderedDict()

    def _encode(self, prompts: list[str]):
        import torch

        ids = self.tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt",
                             max_length=self.tokenizer.model_max_length).input_ids
        with torch.no_grad():
            out = self.text_encoder(ids.to(self.device))[0]         # (B, 77, D)
        return out.to(self.dtype)

    def get(self, prompts: list[str]):
        """Embeddings for ``prompts`` as one (B, 77, D) tensor, encoding only the misses."""
        import torch

        if not self.enabled:
            self.misses += len(prompts)
            return self._encode(list(prompts))
        missing = list(dict.fromkeys(p for p in prompts if p not in self._store))
        self.misses += len(missing)                 # distinct prompts encoded now
        self.hits += len(prompts) - len(missing)
        if missing:
            for p, e in zip(missing, self._encode(missing)):
                self._store[p] = e
        for p in prompts:
            self._store.move_to_end(p)
        out = torch.stack([self._store[p] for p in prompts])
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return out

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._store)}
