"""Child process for the keyed-augmentation tests: the SHA-256 of the train batches (pixels,
labels, sample ids) of a loader over the given files, epochs 0 and 1.

usage: python -m tests.loaders.augment_child BACKEND SEED FILE [FILE ...]
"""
import hashlib
import sys


def digest(backend: str, seed: int, paths) -> str:
    from loaders.config import LoaderConfig
    from loaders.mixing import make_loader

    cfg = LoaderConfig(backend=backend, batch_size=8, image_size=24, workers=2, seed=seed,
                       dtype="uint8", dali_py_workers=0, timeout=120)
    h = hashlib.sha256()
    with make_loader(list(paths), cfg) as loader:
        for _ in range(2):
            for batch in loader:
                for t in (batch.images.contiguous(), batch.labels, batch.sample_id):
                    h.update(t.numpy().tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    print(digest(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
