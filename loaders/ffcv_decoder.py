"""FFCV's RandomResizedCrop decoder with keyed crops and flips (:mod:`loaders.augment`).

FFCV 1.0.2's ``RandomResizedCropRGBImageDecoder`` and ``RandomHorizontalFlip`` draw from
numba's unseeded per-thread generators. :class:`KeyedRandomResizedCrop` is the same decode
(``imdecode`` of the whole JPEG, or the raw pixels, then FFCV's ``resize_crop``, OpenCV's area
filter) with the window and the flip taken from :func:`loaders.augment.crop_window` and
:func:`loaders.augment.flip_bit` of each sample's key, and the flip done in place after the
resize (one op fewer than FFCV's pipeline: ``RandomHorizontalFlip`` copies every image).

The per-epoch key reaches the compiled code at run time: numba freezes global and closure
arrays into the compiled function as constants, so the decoder asks FFCV for one more small
buffer per sample (``KEY_WORDS`` uint64: the epoch key, the file's first row in the loader's
row space, a marker), which :func:`set_epoch_key` fills after FFCV allocates an epoch's memory
and before its decode thread starts; the decode reads it from row 0 of the batch's slot. The
compiled stage therefore serves every epoch, seed and file (``share_compiled_stages`` reuses
it across files). A decode whose key buffer was never filled raises instead of cropping from
uninitialised memory.
"""
from __future__ import annotations

import numba
import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, RandomResizedCropRGBImageDecoder
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler

from loaders.augment import CropSpec, crop_window, flip_bit, sample_key

__all__ = ["KeyedRandomResizedCrop", "set_epoch_key", "KEY_WORDS", "KEY_MARKER"]

KEY_WORDS = 3
"""uint64 words of the key buffer: epoch key, the file's first loader row, :data:`KEY_MARKER`."""
KEY_MARKER = 0x5EEDC0DE5EEDC0DE
"""Written with the key; a decode that does not find it refuses to run."""


class KeyedRandomResizedCrop(RandomResizedCropRGBImageDecoder):
    """RandomResizedCrop (+ flip when ``flip``) decode whose randomness is a pure function of
    (seed, epoch, row) (module doc). Drop-in for FFCV's decoder + ``RandomHorizontalFlip``."""

    def __init__(self, output_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
        super().__init__(output_size, scale=tuple(scale), ratio=tuple(ratio))
        self.flip = bool(flip)

    def declare_state_and_memory(self, previous_state):
        state, (out, temp) = super().declare_state_and_memory(previous_state)
        return state, (out, temp, AllocationQuery((KEY_WORDS,), np.dtype("<u8")))

    def generate_code(self):
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        s_lo, s_hi, lr_lo, lr_hi, r_lo, r_hi = CropSpec(self.scale, self.ratio).args()
        do_flip = self.flip
        marker = np.uint64(KEY_MARKER)

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage, keys = my_storage
            if keys[0, 2] != marker:
                raise RuntimeError("KeyedRandomResizedCrop: no epoch key was set "
                                   "(loaders.ffcv_decoder.set_epoch_key)")
            ekey, first_row = keys[0, 0], keys[0, 1]
            for dst_ix in my_range(len(batch_indices)):
                source_ix = batch_indices[dst_ix]
                field = metadata[source_ix]
                image_data = mem_read(field["data_ptr"], storage_state)
                height = np.uint32(field["height"])
                width = np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(image_data, temp_buffer, height, width, height, width, 0, 0, 1, 1,
                               False, False)
                    selected_size = 3 * height * width
                    temp_buffer = temp_buffer.reshape(-1)[:selected_size]
                    temp_buffer = temp_buffer.reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                key = sample_key(ekey, first_row + np.uint64(source_ix))
                i, j, h, w = crop_window(key, height, width, s_lo, s_hi, lr_lo, lr_hi, r_lo,
                                         r_hi)
                out = destination[dst_ix]
                resize_crop_c(temp_buffer, i, i + h, j, j + w, out)
                if do_flip and flip_bit(key):
                    _flip_in_place(out)
            return destination[:len(batch_indices)]

        decode.is_parallel = True
        return decode


@numba.njit(nogil=True)
def _flip_in_place(img):
    """Mirror an (H, W, C) image left-right in place."""
    width = img.shape[1]
    for y in range(img.shape[0]):
        for x in range(width // 2):
            for c in range(img.shape[2]):
                a = img[y, x, c]
                img[y, x, c] = img[y, width - 1 - x, c]
                img[y, width - 1 - x, c] = a


def set_epoch_key(loader, memory_allocations, ekey: int, first_row: int) -> int:
    """Write the epoch key and the file's first loader row into the key buffers of every
    :class:`KeyedRandomResizedCrop` of ``loader`` (an ``ffcv.loader.Loader``) in
    ``memory_allocations`` (its graph's ``allocate_memory`` result). Returns how many."""
    done = 0
    for node in loader.graph.nodes:
        if isinstance(getattr(node, "decoder", None), KeyedRandomResizedCrop):
            keys = memory_allocations["operation"][node.id][2]  # (slots, batch, KEY_WORDS)
            keys[..., 0] = np.uint64(ekey)
            keys[..., 1] = np.uint64(first_row)
            keys[..., 2] = np.uint64(KEY_MARKER)
            done += 1
    return done
