"""An offline CLIP tokenizer: transformers ``CLIPTokenizer`` built from open_clip's BPE file.

open_clip ships ``bpe_simple_vocab_16e6.txt.gz`` (the vocabulary of OpenAI CLIP, which Stable
Diffusion 1.x/2.x use).  We turn it into ``vocab.json`` + ``merges.txt`` once (cached under
``$SYNTHCLONE_CACHE/tokenizer``) so the tokenizer works without the model hub.
"""
from __future__ import annotations

import gzip
import json
import os

from engine.paths import atomic_write, cache_dir

MODEL_MAX_LENGTH = 77          # CLIP's context length
NUM_MERGES = 49152 - 256 - 2   # the slice open_clip's SimpleTokenizer uses


def _bytes_to_unicode() -> list[str]:
    from open_clip.tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def _vocab_files() -> tuple[str, str]:
    """Write (once) and return the paths of vocab.json and merges.txt."""
    from open_clip.tokenizer import default_bpe

    d = cache_dir("tokenizer", "clip-vit-l-14")
    vocab_path, merges_path = os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")
    if os.path.exists(vocab_path) and os.path.exists(merges_path):
        return vocab_path, merges_path
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:NUM_MERGES + 1]
    merges = [tuple(m.split()) for m in lines]
    base = _bytes_to_unicode()
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with atomic_write(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    with atomic_write(vocab_path, "w", encoding="utf-8") as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    return vocab_path, merges_path


def offline_clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A ``transformers.CLIPTokenizer`` equal (ids) to SD-1.x's tokenizer, with no download.

    ``pad_token="!"`` gives SDXL's ``tokenizer_2`` (OpenCLIP ViT-bigG's: the same vocabulary,
    padded with "!" = id 0 instead of the end-of-text token)."""
    from transformers import CLIPTokenizer

    vocab_path, merges_path = _vocab_files()
    return CLIPTokenizer(vocab_path, merges_path, model_max_length=MODEL_MAX_LENGTH,
                         pad_token=pad_token)
