"""What a source is comes from the description stored in its files (``FileInfo``: kind, class
names); only files without one fall back to a guess from their fields. Label spaces of a
dual-domain loader are compared by recorded class names when both domains have them. Files are
made the way users make them: ``pack`` over an ImageNet-style folder, and generated-shaped
files written through ``BetonWriter`` with the ``FileInfo`` that ``generate`` stores."""
import numpy as np
import pytest

from loaders.beton import BetonWriter
from loaders.beton.pack import pack
from loaders.beton.pack_config import PackConfig
from loaders.beton.schema import FileInfo, generated_fields, generated_info, real_fields
from loaders.config import LoaderConfig
from loaders.errors import LoaderConfigError
from loaders.mixing import DualDomainLoader, LabelSpaceError, make_loader
from loaders.sources import BetonSource, file_kind
from loaders.beton import BetonReader
from tests.loaders.loader_data import PAGE, image, write_beton, write_folder

TENCH, GOLDFISH, SHARK = "n01440764", "n01443537", "n01484850"  # ImageNet-1K labels 0, 1, 2


def packed(tmp_path, name, classes, compact=False):
    """``synthclone pack`` of an ImageNet-style folder (wnid folders, 4 images each)."""
    folder = write_folder(tmp_path / f"{name}_src", 4 * len(classes), classes=classes)
    out = str(tmp_path / f"{name}.beton")
    pack(PackConfig(source=folder, out=out, compact_labels=compact, num_workers=1,
                    max_resolution=None))
    return out


def generated(tmp_path, name, pairs, per_class=4, info=True, kind=None):
    """A generated-shaped file (image, label, sample_id, recipe, prompt) holding ``pairs``
    ``(label, wnid)``, with the FileInfo ``generate`` stores (or another kind / none)."""
    n = per_class * len(pairs)
    desc = generated_info("ab" * 32, ["plain"], pairs) if info else None
    if kind is not None:
        desc = FileInfo(kind, classes=desc.classes)
    out = str(tmp_path / f"{name}.beton")
    with BetonWriter(out, n, generated_fields(None), num_workers=1, page_size=PAGE,
                     durable=False, info=desc) as w:
        for i in range(n):
            label = pairs[i % len(pairs)][0]
            w.append(i, {"image": image(i), "label": label, "sample_id": 100 + i, "recipe": 0,
                         "prompt": np.frombuffer(b"a photo of a fish", np.uint8)})
    return out


def cfg(**kw):
    return LoaderConfig(**{"backend": "torchvision", "batch_size": 4, "image_size": 16,
                           "workers": 0, "dtype": "uint8", **kw})


def test_the_recorded_kind_wins_over_the_fields(tmp_path):
    real = packed(tmp_path, "real", [TENCH, GOLDFISH])
    with BetonReader(real) as r:
        assert file_kind(r) == ("real", True)
    syn = generated(tmp_path, "syn", [(0, TENCH), (1, GOLDFISH)])
    s = BetonSource(syn)
    assert (s.kind, s.synthetic) == ("generated", True)
    assert {k: (e.name, e.wnid) for k, e in s.classes.items()} == {0: ("tench", TENCH),
                                                                   1: ("goldfish", GOLDFISH)}
    # generated fields, but the file says it is real: it is real (num_real = batch size)
    odd = generated(tmp_path, "odd", [(0, TENCH)], kind="real")
    assert not BetonSource(odd).synthetic
    assert {b.num_real for b in make_loader(odd, cfg())} == {4}
    # no stored description (FFCV's own writer, older files): guessed from the fields
    plain_syn = write_beton(tmp_path / "plain_syn.beton", 4, synthetic=True)
    plain_real = write_beton(tmp_path / "plain_real.beton", 4)
    with BetonReader(plain_syn) as a, BetonReader(plain_real) as b:
        assert (file_kind(a), file_kind(b)) == (("generated", False), ("real", False))
    assert BetonSource(plain_syn).classes is None
    assert {b.num_real for b in make_loader(plain_syn, cfg())} == {0}


def test_one_source_takes_files_of_one_kind_and_one_label_space(tmp_path):
    real = packed(tmp_path, "real", [TENCH, GOLDFISH])
    syn = generated(tmp_path, "syn", [(0, TENCH), (1, GOLDFISH)])
    with pytest.raises(LoaderConfigError,
                       match=r"syn\.beton holds generated images but .*real\.beton real"):
        BetonSource([real, syn])
    other = generated(tmp_path, "other", [(0, SHARK)])
    with pytest.raises(LoaderConfigError, match=r"label 0 is 'tench' in .*syn\.beton but "
                                                r"'great white shark' in .*other\.beton"):
        BetonSource([syn, other])


def test_same_classes_same_labels_pass(tmp_path):
    real = packed(tmp_path, "real", [TENCH, GOLDFISH])
    syn = generated(tmp_path, "syn", [(0, TENCH), (1, GOLDFISH)])
    loader = DualDomainLoader(real, syn, cfg())
    assert len(loader) == 8 // 2 and next(iter(loader)).num_real == 2


def test_the_same_classes_numbered_differently_are_refused_naming_both(tmp_path):
    """A compact-label pack (goldfish 0, shark 1) against ImageNet-1K numbered generated
    images (goldfish 1, shark 2): label 1 is in both domains, but means different classes."""
    real = packed(tmp_path, "real", [GOLDFISH, SHARK], compact=True)
    syn = generated(tmp_path, "syn", [(1, GOLDFISH), (2, SHARK)])
    with pytest.raises(LabelSpaceError, match=r"real .*real\.beton and synthetic .*syn\.beton "
                                              r"number the same classes differently: 'goldfish'"
                                              r" \(n01443537\) is label 0 in real but 1"):
        DualDomainLoader(real, syn, cfg())


def test_a_label_naming_another_class_is_refused(tmp_path):
    real = packed(tmp_path, "real", [TENCH, GOLDFISH])
    syn = generated(tmp_path, "syn", [(0, TENCH), (1, SHARK)])
    with pytest.raises(LabelSpaceError, match=r"label 1 is 'goldfish' \(n01443537\) in real "
                                              r".*real\.beton but 'great white shark' "
                                              r"\(n01484850\) in synthetic .*syn\.beton"):
        DualDomainLoader(real, syn, cfg())


def test_missing_classes_are_named(tmp_path):
    real = packed(tmp_path, "real", [TENCH, GOLDFISH])
    syn = generated(tmp_path, "syn", [(0, TENCH)], per_class=8)
    with pytest.raises(LabelSpaceError, match=r"real .*real\.beton has 2 classes, synthetic "
                                              r".*syn\.beton 1; only real: 'goldfish'"):
        DualDomainLoader(real, syn, cfg())
    from loaders.config import MixConfig

    DualDomainLoader(real, syn, cfg(), MixConfig(label_check="subset"))
