"""DALI backend: a ``@pipeline_def`` fed with .beton bytes; GPU JPEG decoding where a GPU is.

The bridge from FFCV's format to DALI (no such bridge existed): ``fn.external_source`` runs
:class:`BetonFeed` (in ``dali_py_workers`` processes, parallel batch mode, or in-process), which
reads each planned row's stored bytes zero-copy from the memory-mapped .beton through
:meth:`loaders.beton.BetonReader.encoded` and hands them to DALI with the label, sample_id and
file index. Then, in one graph whose ``device`` switches CPU/GPU (as DALI's ResNet-50 example)::

    decoders.image_slice of the sample's window (device "mixed" on a GPU, "cpu" otherwise)
    -> resize -> crop_mirror_normalize (mirror per sample, ImageNet mean/std, CHW or HWC)

    train: the window and the mirror flag of :func:`loaders.augment.crop_params`, computed by
           the feed: a pure function of (seed, epoch, row), the window the FFCV and torchvision
           backends cut (DALI's own random crop and coin flip would depend on how many batches
           its generator has served, so a resumed run would draw other crops)
    eval:  FFCV's center window (side int(ratio * short side), at ((W - c) // 2, (H - c) // 2))

Images stored raw (FFCV write modes raw/smart/proportion) skip the decoder: a DALI conditional
sends them through ``slice`` instead.

Rows: the plan of every epoch (and its epoch key) is written to a small .npz in a private
temporary folder before the epoch starts; the feed reads the plan of DALI's own epoch counter
(``BatchInfo.epoch_idx``)
and raises StopIteration after the last batch, so any epoch sequence (``set_epoch``, resume
mid-epoch) works without restarting the worker processes. Sharding by rank and epoch-aware
shuffling come from the plan. Output goes through ``DALIGenericIterator`` as torch tensors.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import torch

from loaders.batch import Batch
from loaders.errors import BackendUnavailable, LoaderConfigError, LoaderWorkerError

__all__ = ["DALIBackend", "BetonFeed", "require", "DALI_EXTRA"]

DALI_EXTRA = "pip install 'synthclone[dali]' (nvidia-dali-cuda120)"
"""How to install DALI, named in every 'DALI missing' message."""
DALI_PY_START_METHOD = "spawn"
"""Start method of the feed processes (fork is unsafe once CUDA or DALI threads exist)."""
_EMPTY = np.zeros(1, dtype=np.uint8)
_EMPTY_HWC = np.zeros((1, 1, 3), dtype=np.uint8)


def require() -> None:
    """Import DALI (ModuleNotFoundError names what is missing)."""
    import nvidia.dali  # noqa: F401
    import nvidia.dali.plugin.pytorch  # noqa: F401


def center_window(height: np.ndarray, width: np.ndarray, ratio: float):
    """FFCV's ``get_center_crop``: side ``int(ratio * min(h, w))``, anchor ``((w-c)//2,
    (h-c)//2)`` -> (anchor (n, 2) as x, y; shape (n, 2) as w, h), float32."""
    c = (ratio * np.minimum(height, width)).astype(np.int64)
    anchor = np.stack([(width - c) // 2, (height - c) // 2], axis=1).astype(np.float32)
    return anchor, np.stack([c, c], axis=1).astype(np.float32)


def feed_outputs(with_raw: bool, eval_mode: bool) -> list[str]:
    """Names of :class:`BetonFeed`'s outputs, in order."""
    return (["encoded", "label", "sample_id", "file"] + (["raw", "is_raw"] if with_raw else [])
            + ["anchor", "shape"] + ([] if eval_mode else ["mirror"]))


class BetonFeed:
    """The external source: planned rows -> encoded images and their metadata (module doc).

    Picklable (worker processes reopen the files by path). Outputs per batch, one array per
    row (:func:`feed_outputs` names them): encoded bytes, label, sample_id, file index; with
    ``with_raw`` the raw HWC pixels and an is-raw flag (placeholders where not raw); the
    window's anchor (x, y) and shape (w, h): for eval the center window, for train the keyed
    random window (``spec``, a :class:`loaders.augment.CropSpec`) and the mirror flag.
    """

    def __init__(self, files, plan_dir: str, ratio: float, eval_mode: bool, with_raw: bool,
                 spec=None):
        self.files = files  # [(path, image_field)]
        self.plan_dir, self.ratio, self.eval_mode = plan_dir, ratio, eval_mode
        self.with_raw, self.spec = with_raw, spec
        self._readers = None
        self._plans: dict = {}
        self._offsets = None

    def __getstate__(self):
        return {**self.__dict__, "_readers": None, "_plans": {}}

    def _open(self):
        from loaders.beton.reader import BetonReader

        self._readers = [BetonReader(p) for p, _ in self.files]
        sizes = [len(r) for r in self._readers]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        names = [list(r.fields) for r in self._readers]
        self._label_k = [n.index("label") for n in names]
        self._sid_k = [n.index("sample_id") if "sample_id" in n else None for n in names]

    def plan(self, epoch_idx: int):
        if epoch_idx not in self._plans:
            self._plans = {epoch_idx: dict(np.load(os.path.join(self.plan_dir,
                                                                f"{epoch_idx}.npz")))}
            p = self._plans[epoch_idx]
            p["starts"] = np.concatenate([[0], np.cumsum(p["sizes"])])
        return self._plans[epoch_idx]

    def __call__(self, info):
        if self._readers is None:
            self._open()
        p = self.plan(info.epoch_idx)
        b = info.iteration
        if b >= len(p["sizes"]):
            raise StopIteration
        rows = p["rows"][p["starts"][b]:p["starts"][b + 1]]
        files = np.searchsorted(self._offsets, rows, side="right") - 1
        enc, raw, is_raw, labels, sids, hs, ws = [], [], [], [], [], [], []
        for row, f in zip(rows.tolist(), files.tolist()):
            r, i = self._readers[f], row - int(self._offsets[f])
            e = r.encoded(i, self.files[f][1], view=True)
            if e[1] == "raw":
                enc.append(_EMPTY)
                raw.append(np.asarray(e[0]).reshape(e.height, e.width, 3))
            else:
                enc.append(e[0])
                raw.append(_EMPTY_HWC)
            is_raw.append(np.array(e[1] == "raw"))
            hs.append(e.height)
            ws.append(e.width)
            rec = r.metadata[i]
            labels.append(np.array(rec[f"f{self._label_k[f]}"], dtype=np.int64))
            k = self._sid_k[f]
            sids.append(np.array(rec[f"f{k}"] if k is not None else i, dtype=np.int64))
        out = [enc, labels, sids, [np.array(f, dtype=np.int64) for f in files]]
        if self.with_raw:
            out += [raw, is_raw]
        if self.eval_mode:
            anchor, shape = center_window(np.array(hs), np.array(ws), self.ratio)
            out += [list(anchor), list(shape)]
        else:
            from loaders.augment import crop_params

            c = crop_params(int(p["ekey"]), rows, hs, ws, self.spec)  # top, left, h, w, flip
            anchor = np.ascontiguousarray(c[:, [1, 0]], dtype=np.float32)  # x, y
            shape = np.ascontiguousarray(c[:, [3, 2]], dtype=np.float32)  # w, h
            out += [list(anchor), list(shape), [np.array(v, dtype=np.int32) for v in c[:, 4]]]
        return tuple(out)


def _build_pipeline(feed, config, size: int, has_raw: bool, device_id, parallel: bool,
                    py_workers: int):
    from nvidia.dali import fn, pipeline_def, types

    gpu = device_id is not None
    decoder_device = "mixed" if gpu else "cpu"
    op_device = "gpu" if gpu else "cpu"
    train = config.pipeline == "train"
    dtype = {"float32": types.FLOAT, "float16": types.FLOAT16, "uint8": types.UINT8}[config.dtype]
    floating = config.dtype != "uint8"
    mean = [m * 255 for m in config.mean] if floating else [0.0, 0.0, 0.0]
    std = [s * 255 for s in config.std] if floating else [1.0, 1.0, 1.0]
    names = feed_outputs(has_raw, not train)

    @pipeline_def(enable_conditionals=has_raw)
    def beton_pipeline():
        outs = dict(zip(names, fn.external_source(
            source=feed, num_outputs=len(names), batch=True, batch_info=True, parallel=parallel,
            layout=["HWC" if n == "raw" else "" for n in names])))
        enc, raw, is_raw = outs["encoded"], outs.get("raw"), outs.get("is_raw")
        labels, sids, files = outs["label"], outs["sample_id"], outs["file"]

        def decode_jpeg():  # the window's pixels only (ROI decoding)
            img = fn.decoders.image_slice(enc, outs["anchor"], outs["shape"],
                                          device=decoder_device,
                                          output_type=types.RGB, normalized_anchor=False,
                                          normalized_shape=False, axis_names="WH")
            return fn.resize(img, device=op_device, size=[size, size],
                             interp_type=types.INTERP_TRIANGULAR, antialias=True)

        def crop_raw():
            img = raw.gpu() if gpu else raw
            img = fn.slice(img, outs["anchor"], outs["shape"], device=op_device,
                           normalized_anchor=False,
                           normalized_shape=False, axis_names="WH")
            return fn.resize(img, device=op_device, size=[size, size],
                             interp_type=types.INTERP_TRIANGULAR, antialias=True)

        if has_raw:
            if is_raw:
                images = crop_raw()
            else:
                images = decode_jpeg()
        else:
            images = decode_jpeg()
        mirror = outs["mirror"] if train else 0  # 0 for every row when flip is off
        images = fn.crop_mirror_normalize(images, device=op_device, dtype=dtype,
                                          output_layout="HWC" if config.channels_last else "CHW",
                                          mean=mean, std=std, mirror=mirror)
        return images, labels, sids, files

    workers = config.workers or os.cpu_count() or 1
    return beton_pipeline(batch_size=config.batch_size, num_threads=workers,
                          device_id=device_id, seed=config.seed & 0x7FFFFFFF,
                          prefetch_queue_depth=config.batches_ahead,
                          py_num_workers=max(1, py_workers),
                          py_start_method=DALI_PY_START_METHOD)


class DALIBackend:
    """The DALI backend (module doc; contract in :mod:`loaders.backends`)."""

    name = "dali"

    def __init__(self, sources, config):
        self.config = config
        self.files = [(p, s.image_field) for s in sources for p in s.paths]
        self.has_raw = any(bool(s.image_raw.any()) for s in sources)
        gpu = config.device.startswith("cuda")
        if gpu and not torch.cuda.is_available():
            raise BackendUnavailable(f"dali: device={config.device!r} but CUDA is not available "
                                     "here; use device=cpu (DALI's CPU decoder)")
        self.device_id = (int(config.device.split(":")[1]) if ":" in config.device
                          else torch.cuda.current_device()) if gpu else None
        self._size = config.image_size
        self._dir = None
        self._pipe = self._iter = None
        self._dali_epoch = 0
        self._exhausted = True

    def set_image_size(self, size: int) -> None:
        if size != self._size:
            self._size = size
            self.close()

    def _write_plan(self, k: int, plan, epoch: int) -> None:
        from loaders.augment import epoch_key

        tmp = os.path.join(self._dir, f".{k}.npz")
        with open(tmp, "wb") as f:
            np.savez(f, rows=plan.rows, sizes=plan.sizes,
                     ekey=np.uint64(epoch_key(self.config.seed, epoch)))
        os.replace(tmp, os.path.join(self._dir, f"{k}.npz"))
        old = os.path.join(self._dir, f"{k - 2}.npz")
        if os.path.exists(old):
            os.unlink(old)

    def _start(self, plan, epoch: int) -> None:
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        from loaders.augment import CropSpec

        self._dir = tempfile.mkdtemp(prefix="synthclone-dali-")
        self._dali_epoch = 0
        self._write_plan(0, plan, epoch)
        cfg = self.config
        feed = BetonFeed(self.files, self._dir, cfg.center_crop_ratio, cfg.pipeline == "eval",
                         self.has_raw, spec=CropSpec.of(cfg))
        self._pipe = _build_pipeline(feed, cfg, self._size, self.has_raw, self.device_id,
                                     parallel=cfg.dali_py_workers > 0,
                                     py_workers=cfg.dali_py_workers)
        try:
            self._pipe.build()
            self._iter = DALIGenericIterator([self._pipe], ["images", "labels", "sample_id",
                                                            "source"],
                                             auto_reset=False,
                                             last_batch_policy=LastBatchPolicy.PARTIAL)
        except RuntimeError as exc:
            self.close()
            raise LoaderWorkerError(f"dali: the pipeline failed to start: "
                                    f"{str(exc).splitlines()[0]}") from exc

    def batches(self, plan, epoch: int):
        if self._iter is not None and not self._exhausted:
            self.close()  # the last epoch was left early: start fresh
        if self._iter is None:
            self._start(plan, epoch)
        else:
            self._dali_epoch += 1
            self._write_plan(self._dali_epoch, plan, epoch)
            self._iter.reset()
        self._exhausted = False
        fmt_last = self.config.channels_last
        for b in range(len(plan)):
            try:
                out = next(self._iter)[0]
            except StopIteration:
                raise LoaderWorkerError(f"dali: the pipeline ended after {b} of {len(plan)} "
                                        "batches") from None
            except RuntimeError as exc:
                self.close()
                raise LoaderWorkerError(f"dali: decoding failed: "
                                        f"{str(exc).splitlines()[0]}") from exc
            images = out["images"]
            if fmt_last:
                images = images.permute(0, 3, 1, 2)  # NHWC memory -> channels_last NCHW view
            labels = out["labels"].view(-1).to(torch.int64)
            if self.config.device != "cpu":
                labels = labels.to(self.config.device, non_blocking=True)
            yield Batch(images, labels, int(plan.num_real[b]),
                        sample_id=out["sample_id"].view(-1).cpu(),
                        source=out["source"].view(-1).cpu())
        try:
            next(self._iter)
            raise LoaderWorkerError("dali: the pipeline gave more batches than planned")
        except StopIteration:
            self._exhausted = True

    def close(self) -> None:
        self._iter = None
        if self._pipe is not None:
            del self._pipe
            self._pipe = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._exhausted = True
