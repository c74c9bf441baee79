"""The storage contract: file kinds, FileInfo validation and round trip, generated files'
class entries built from a plan's rows."""
import pytest

from loaders.beton.schema import (GENERATED_FIELDS, REAL_FIELDS, ClassEntry, FileInfo,
                                  generated_fields, generated_info, real_fields)
from loaders.errors import LoadersError


def test_field_sets_match_the_field_objects():
    assert tuple(real_fields()) == REAL_FIELDS
    assert tuple(generated_fields(64, 80)) == GENERATED_FIELDS
    img = generated_fields(64, 80)["image"]
    assert (img.max_resolution, img.jpeg_quality, img.write_mode) == (64, 80, "jpg")


def test_file_info_checks_and_round_trip():
    with pytest.raises(LoadersError, match="plan_hash"):
        FileInfo("generated")
    with pytest.raises(LoadersError, match="file kind 'synthetic'"):
        FileInfo("synthetic")
    info = FileInfo("generated", "h" * 64, {"3": {"name": "crane", "wnid": "n02012849"}},
                    ["c"])
    assert info.classes == {3: ClassEntry("crane", "n02012849")} and info.class_name(3) == "crane"
    assert FileInfo.from_json(info.to_json()) == info
    assert FileInfo.from_json(None) is None


def test_generated_info_names_classes():
    rows = [(0, "n01440764"), (0, "n01440764"), (7, None), (9, None)]
    info = generated_info("h" * 64, ["c_hc", "c"], rows, names={"7": "solar panel"})
    assert info.kind == "generated" and info.recipes == ["c_hc", "c"]
    assert info.classes == {0: ClassEntry("tench", "n01440764"),
                            7: ClassEntry("solar panel", None), 9: ClassEntry("9", None)}
