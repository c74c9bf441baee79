""".beton test sets go through the loaders' eval pipeline (issue #13 item 7); compared with an
independent computation: each stored image decoded with PIL, the center-crop transform written
out with numpy/OpenCV (square of crop/resize x short side, area-resized to crop), the model run
on the stack."""
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from engine.eval.checkpoint import LoadedModel, load_model
from engine.eval.beton_input import BetonImages
from engine.eval.images import ImageDataset, TransformSpec, image_batches
from engine.eval.inference import run_model
from tests.engine.eval import fakes
from tests.engine.eval.beton_refs import center_crop_reference, decoded

SIZES = [(40, 32), (32, 48), (57, 41), (36, 36), (64, 50), (45, 70), (33, 47)]
"""(width, height) of the stored images: both orientations, odd sides, a square."""
CROP, RESIZE = 24, 28
JPEG_TOL = 0.25
"""Normalised pixel units (~15/255): libjpeg-turbo as FFCV calls it vs PIL's decoder (seen:
max 0.16, mean 0.02 on these images)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("beton_eval")
    imgs = [np.asarray(Image.open(fakes.image(str(d / f"{i}.png"), 20 + i, s)).convert("RGB"))
            for i, s in enumerate(SIZES)]
    path = fakes.beton(str(d / "set.beton"), [3 * i for i in range(len(SIZES))], images=imgs)
    ckpt = fakes.tiny_checkpoint(str(d / "model.pt"), seed=5)
    return {"path": path, "model": load_model(ckpt, model="test_resnet")}


def model_outputs(loaded, x):
    feats = {}
    handle = loaded.head.register_forward_hook(lambda m, i, o: feats.update(f=i[0]))
    try:
        with torch.no_grad():
            logits = loaded.model(x)
    finally:
        handle.remove()
    return logits.numpy(), feats["f"].flatten(1).numpy()


@pytest.mark.timeout(300)
def test_ffcv_eval_path_equals_the_independent_reference(data):
    items = list(range(len(SIZES)))
    got = run_model(data["model"], BetonImages(data["path"], items, CROP, RESIZE),
                    batch_size=3, workers=1)                   # 3 batches, the last one short
    # same decoder: the transform is exactly the reference's
    same = center_crop_reference(decoded(data["path"], items, "ffcv"), CROP, RESIZE)
    logits, feats = model_outputs(data["model"], same)
    np.testing.assert_allclose(got["logits"], logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["features"], feats, atol=1e-4, rtol=0)
    # PIL's decoder: pixels within JPEG-decoder tolerance, so logits close and the same top-1
    pil = center_crop_reference(decoded(data["path"], items, "pil"), CROP, RESIZE)
    ours = torch.cat([b.clone() for b in image_batches(
        BetonImages(data["path"], items, CROP, RESIZE), batch_size=3, workers=1)])
    assert (ours - pil).abs().max() < JPEG_TOL
    ref_logits, _ = model_outputs(data["model"], pil)
    spread = np.abs(logits - ref_logits).max()  # what the decoder alone changes
    assert np.abs(got["logits"] - ref_logits).max() <= spread + 1e-4
    top = got["logits"].argmax(1)
    assert (ref_logits[np.arange(len(top)), top] >= ref_logits.max(1) - 2 * spread - 1e-4).all()


@pytest.mark.timeout(300)
def test_a_subset_in_file_order_and_uint8_pixels(data):
    items = [1, 4, 5]                                         # --max-images / per-class draws
    got = torch.cat([b.clone() for b in image_batches(
        BetonImages(data["path"], items, CROP, CROP, dtype="uint8"), batch_size=2,
        workers=1)])
    assert got.dtype == torch.uint8 and got.shape == (3, 3, CROP, CROP)
    want = []
    for a in decoded(data["path"], items, "ffcv"):         # ratio 1: the whole short side
        h, w = a.shape[:2]
        c = min(h, w)
        y, x = (h - c) // 2, (w - c) // 2
        want.append(cv2.resize(a[y:y + c, x:x + c], (CROP, CROP),
                               interpolation=cv2.INTER_AREA).transpose(2, 0, 1))
    assert torch.equal(got, torch.from_numpy(np.stack(want)))


@pytest.mark.timeout(300)
def test_features_outlive_the_loaders_reused_buffers(data):
    """A model whose feature vector is a view of the input batch (Flatten -> Linear): the
    loader reuses its output buffers, so the features must be copied per batch."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * CROP * CROP, 5)).eval()
    loaded = LoadedModel(net, "1", "flat", "torchvision", 5, data["path"], "0" * 64)
    items = list(range(len(SIZES)))
    got = run_model(loaded, BetonImages(data["path"], items, CROP, RESIZE), batch_size=2,
                    workers=1)                                 # 4 batches: buffers reused
    want = center_crop_reference(decoded(data["path"], items, "ffcv"), CROP, RESIZE)
    want = want.flatten(1).numpy()
    np.testing.assert_allclose(got["features"], want, atol=1e-5, rtol=0)


@pytest.mark.timeout(300)
def test_torchvision_backend_equals_the_folder_transform(data):
    """backend=torchvision decodes with PIL and resizes like the image-folder path."""
    items = list(range(len(SIZES)))
    got = run_model(data["model"], BetonImages(data["path"], items, CROP, RESIZE,
                                               backend="torchvision"), batch_size=3, workers=1)
    spec = TransformSpec(RESIZE, CROP).build()
    x = torch.stack([spec(Image.fromarray(a)) for a in decoded(data["path"], items, "pil")])
    logits, _ = model_outputs(data["model"], x)
    np.testing.assert_allclose(got["logits"], logits, atol=1e-4, rtol=0)


@pytest.mark.timeout(600)
def test_dali_cpu_backend_is_within_decoder_tolerance(data):
    pytest.importorskip("nvidia.dali")
    items = list(range(len(SIZES)))
    got = torch.cat([b.clone() for b in image_batches(
        BetonImages(data["path"], items, CROP, RESIZE, backend="dali"), batch_size=4,
        workers=1)])
    pil = center_crop_reference(decoded(data["path"], items, "pil"), CROP, RESIZE)
    diff = (got - pil).abs()
    # DALI resamples with a triangular filter, not OpenCV's area filter: a few levels at edges
    assert got.shape == pil.shape and diff.mean() < 0.05 and diff.max() < 0.75


@pytest.mark.timeout(300)
def test_an_open_stream_rereads_in_order_and_keeps_torch_threads(data):
    """FFCV sets torch's thread count to its decode threads; the eval path keeps the model's."""
    items = list(range(len(SIZES)))
    want = center_crop_reference(decoded(data["path"], items, "ffcv"), CROP, RESIZE)
    torch.set_num_threads(1)
    with BetonImages(data["path"], items, CROP, RESIZE).open(batch_size=3, workers=2) as s:
        for _ in range(2):                                     # one compiled loader, read twice
            got = []
            for b in image_batches(s, batch_size=0, workers=0):
                assert torch.get_num_threads() == 1
                got.append(b.clone())
            torch.testing.assert_close(torch.cat(got), want, atol=1e-5, rtol=0)
        assert len(s) == len(SIZES) and s.num_batches == 3
    assert torch.get_num_threads() == 1


def test_bad_crop_and_backend_are_user_errors(data):
    from engine.errors import UserError

    with pytest.raises(UserError, match="--crop"):
        BetonImages(data["path"], [0], crop=256, resize=224)
    with pytest.raises(UserError, match="ffcv, dali, torchvision"):
        BetonImages(data["path"], [0], backend="pil")


def test_files_still_read_through_their_transform(tmp_path):
    """Image folders keep the torchvision path (ImageDataset in a DataLoader)."""
    paths = [fakes.image(str(tmp_path / f"{i}.png"), i, (40, 32)) for i in range(3)]
    spec = TransformSpec(RESIZE, CROP)
    got = torch.cat(list(image_batches(ImageDataset(paths, spec.build()), batch_size=2,
                                       workers=0)))
    want = torch.stack([spec.build()(Image.open(p).convert("RGB")) for p in paths])
    torch.testing.assert_close(got, want)
    assert os.path.exists(paths[0])
