"""Child process of the lock test: holds a writer open on OUT until told to close it.

usage: python -m tests.loaders.lock_child OUT
  prints "ready" once the writer is open (lock held, one sample committed), then waits for a
  line on stdin and closes the writer (printing "closed").
"""
import sys

from ffcv.fields import IntField

from loaders.beton import BetonWriter


def main(out: str) -> None:
    w = BetonWriter(out, 2, {"label": IntField(), "sample_id": IntField()}, num_workers=1)
    w.append(0, {"label": 7, "sample_id": 0})
    w.flush()
    print("ready", flush=True)
    sys.stdin.readline()
    w.append(1, {"label": 8, "sample_id": 1})
    w.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
