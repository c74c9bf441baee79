"""loaders.files.folder_labels: the one wnid-folder -> label mapping (pack and the torchvision
ImageFolder dataset both use it)."""
import pytest

import engine.catalog
from loaders.errors import LoaderConfigError
from loaders.files import ImageFolderError, folder_labels

TENCH, GOLDFISH, TABBY = "n01440764", "n01443537", "n02123045"  # ImageNet-1K 0, 1, 281


def test_wnid_folders_get_imagenet_labels_in_any_given_order():
    assert folder_labels("root", [TABBY, TENCH, TABBY, GOLDFISH]) == {
        TENCH: 0, GOLDFISH: 1, TABBY: 281}


def test_compact_numbers_sorted_folders_from_zero():
    assert folder_labels("root", ["zebra", TABBY, "apple"], compact=True) == {
        "apple": 0, TABBY: 1, "zebra": 2}


def test_unknown_folders_raise_the_callers_error_with_its_hint():
    with pytest.raises(ImageFolderError, match=r"root: folder names \['apple'\] are not "
                                               "ImageNet-1K wnids; rename them or use compact"):
        folder_labels("root", [TENCH, "apple"])
    with pytest.raises(LoaderConfigError, match=r"rename them or use labels='compact'$"):
        folder_labels("root", ["apple"], error=LoaderConfigError, hint="use labels='compact'")


def test_unreadable_catalog_is_a_user_error_naming_the_way_out(monkeypatch):
    def missing():
        raise FileNotFoundError("imagenet_synsets.txt")

    monkeypatch.setattr(engine.catalog, "imagenet_index", missing)
    with pytest.raises(LoaderConfigError, match=r"class list is unavailable .*imagenet_synsets"
                                                r".*pass --compact-labels to number"):
        folder_labels("root", [TENCH], error=LoaderConfigError, hint="pass --compact-labels")
    assert folder_labels("root", [TENCH], compact=True) == {TENCH: 0}  # needs no catalog
