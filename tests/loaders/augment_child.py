"""Child process for the keyed-augmentation tests: the SHA-256 of the train batches (pixels,
labels, sample ids) of a loader over the given files, epochs 0 and 1.

usage: python -m tests.loaders.augment_child BACKEND SEED WORKERS FILE [FILE ...]
  WORKERS: decode threads (FFCV), DataLoader worker processes (torchvision) or DALI's
           external-source worker processes (DALI, with one CPU thread)
"""
import hashlib
import sys


def digest(backend: str, seed: int, workers: int, paths) -> str:
    from loaders.config import LoaderConfig
    from loaders.mixing import make_loader

    cfg = LoaderConfig(backend=backend, batch_size=8, image_size=24, seed=seed, dtype="uint8",
                       workers=1 if backend == "dali" else workers,
                       dali_py_workers=workers if backend == "dali" else 0, timeout=120)
    h = hashlib.sha256()
    loader = make_loader(list(paths), cfg)
    try:
        for epoch in range(2):
            loader.set_epoch(epoch)
            for batch in loader:
                for t in (batch.images.contiguous(), batch.labels, batch.sample_id):
                    h.update(t.numpy().tobytes())
    finally:
        loader.close()
    return h.hexdigest()


if __name__ == "__main__":
    print(digest(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
