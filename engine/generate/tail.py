"""The pipelined tail: VAE decode -> uint8 -> resize to the storage size -> guards -> writer.

While the UNet denoises batch k+1 on the main thread, batch k goes through ``Tail.process`` on
a worker thread (``async_=True``); the writer JPEG-encodes on its own pool.  At most
``max_inflight`` batches wait in the tail, so memory stays bounded.
"""
from __future__ import annotations

import concurrent.futures
import time
from collections import deque


def postprocess(x, store_size: int | None):
    """(B, 3, H, W) float in [-1, 1] -> uint8 (B, h, w, 3) with the longer side <= store_size.

    Integer factors use the fused ``vae_to_uint8`` op (area downsampling); other ratios resize
    with OpenCV's INTER_AREA after the conversion.
    """
    import numpy as np

    from engine.ops.postprocess import vae_to_uint8

    h, w = x.shape[-2:]
    d = 1
    if store_size and max(h, w) > store_size:
        f = max(h, w) / store_size
        if f == int(f) and h % int(f) == 0 and w % int(f) == 0:
            d = int(f)
    u8 = vae_to_uint8(x.float().contiguous(), d).cpu()                 # (B, h/d, w/d, 3)
    if store_size and max(u8.shape[1:3]) > store_size:
        import cv2
        import torch

        s = store_size / max(u8.shape[1:3])
        size = (max(1, round(u8.shape[2] * s)), max(1, round(u8.shape[1] * s)))   # (w, h)
        u8 = torch.from_numpy(np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA)
                                        for im in u8.numpy()]))
    return u8


class Tail:
    """Runs ``fn(item)`` for each submitted item, in order, on one worker thread (or inline)."""

    def __init__(self, fn, async_: bool = True, max_inflight: int = 2):
        self.fn = fn
        self.async_ = async_
        self.max_inflight = max(1, max_inflight)
        self._pool = (concurrent.futures.ThreadPoolExecutor(1, "gen-tail") if async_ else None)
        self._inflight: deque = deque()
        self.results: list = []
        self.wait_time = 0.0        # main-thread time spent waiting for the tail

    def submit(self, item) -> None:
        if self._pool is None:
            self.results.append(self.fn(item))
            return
        self._inflight.append(self._pool.submit(self.fn, item))
        while len(self._inflight) > self.max_inflight:
            self._pop()
        while self._inflight and self._inflight[0].done():
            self._pop()

    def _pop(self) -> None:
        t0 = time.perf_counter()
        self.results.append(self._inflight.popleft().result())    # re-raises worker errors
        self.wait_time += time.perf_counter() - t0

    def drain(self) -> list:
        """Wait for every submitted item; return (and clear) the results collected so far."""
        while self._inflight:
            self._pop()
        out, self.results = self.results, []
        return out

    def take(self) -> list:
        """Results of finished items so far (without waiting)."""
        out, self.results = self.results, []
        return out

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            if wait:
                try:
                    self.drain()
                finally:
                    self._pool.shutdown(wait=True)
            else:
                for f in self._inflight:
                    f.cancel()
                self._pool.shutdown(wait=True, cancel_futures=True)
