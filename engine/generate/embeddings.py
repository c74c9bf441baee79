"""Text-embedding cache keyed by prompt: plans repeat prompts heavily (one template per class,
one empty negative prompt), so the text encoders run once per distinct prompt.

An entry is whatever the family's encoder returns for one prompt: SD 1.x/2.x the hidden states
(77, D); SDXL a tuple (hidden states of both encoders (77, D1 + D2), pooled embedding (P,)).
"""
from __future__ import annotations

from collections import OrderedDict


class EmbeddingCache:
    """LRU cache ``prompt -> embedding``; ``enabled=False`` encodes every time.

    ``encode(prompts) -> tensor or tuple of tensors``, batch-first; without it the cache
    encodes with ``tokenizer`` + ``text_encoder`` (the last hidden state, SD 1.x/2.x).
    """

    def __init__(self, tokenizer=None, text_encoder=None, device="cpu", dtype=None,
                 max_entries: int = 4096, enabled: bool = True, encode=None):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.device = device
        self.dtype = dtype
        self.max_entries = max_entries
        self.enabled = enabled
        self.encode = encode or self._encode
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[str, tuple] = OrderedDict()

    def _encode(self, prompts: list[str]):
        import torch

        ids = self.tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt",
                             max_length=self.tokenizer.model_max_length).input_ids
        with torch.no_grad():
            out = self.text_encoder(ids.to(self.device))[0]         # (B, 77, D)
        return out.to(self.dtype)

    def get(self, prompts: list[str]):
        """Embeddings for ``prompts`` (one tensor (B, ...) per part the encoder returns),
        encoding only the misses."""
        import torch

        if not self.enabled:
            self.misses += len(prompts)
            return self.encode(list(prompts))
        missing = list(dict.fromkeys(p for p in prompts if p not in self._store))
        self.misses += len(missing)                 # distinct prompts encoded now
        self.hits += len(prompts) - len(missing)
        if missing:
            out = self.encode(missing)
            one = not isinstance(out, tuple)
            parts = (out,) if one else out
            for k, p in enumerate(missing):
                self._store[p] = (one, tuple(x[k] for x in parts))
        for p in prompts:
            self._store.move_to_end(p)
        entries = [self._store[p] for p in prompts]
        stacked = tuple(torch.stack([e[1][i] for e in entries])
                        for i in range(len(entries[0][1])))
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return stacked[0] if entries[0][0] else stacked

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._store)}
