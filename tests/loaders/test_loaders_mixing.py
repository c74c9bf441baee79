"""DualDomainLoader options end to end (torchvision backend in-process: no JIT, no workers),
bad input, and the ``synthclone inspect --loader/--subset`` command."""
import numpy as np
import pytest

from engine.cli import main as cli
from loaders import subsets
from loaders.beton.format import BetonFormatError
from loaders.config import LoaderConfig, MixConfig
from loaders.errors import LoaderConfigError
from loaders.mixing import DualDomainLoader, LabelSpaceError, make_loader
from loaders.sources import BetonSource
from tests.loaders.loader_data import write_beton

R, S = 24, 60


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mix")
    return {"real": write_beton(d / "real.beton", R, num_classes=4, label_base=20),
            "syn": write_beton(d / "syn.beton", S, num_classes=4, label_base=20,
                               synthetic=True, sample_id_base=1000),
            "compact": write_beton(d / "compact.beton", 16, num_classes=4, synthetic=True)}


def cfg(**kw):
    return LoaderConfig(**{"backend": "torchvision", "batch_size": 8, "image_size": 16,
                           "workers": 0, "dtype": "uint8", **kw})


def rows_of(loader):
    return [(b.sample_id.tolist(), b.num_real) for b in loader]


def test_share_zero_and_one_are_the_single_domain_baselines(files):
    real_only = DualDomainLoader(files["real"], files["syn"], cfg(), MixConfig(synthetic_share=0))
    got = rows_of(real_only)
    assert len(got) == R // 8 and all(k == 8 and max(ids) < 1000 for ids, k in got)
    assert sorted(i for ids, _ in got for i in ids) == list(range(R))
    syn_only = DualDomainLoader(None, files["syn"], cfg(), MixConfig(synthetic_share=1))
    got = rows_of(syn_only)
    assert len(got) == S // 8 and all(k == 0 and min(ids) >= 1000 for ids, k in got)


def test_exact_split_and_synthetic_walk_through_a_backend(files):
    loader = DualDomainLoader(files["real"], files["syn"], cfg(batch_size=6),
                              MixConfig(synthetic_share=0.5))
    assert loader.synthetic_rows_per_batch == 3 and len(loader) == R // 3
    syn_seen = []
    for epoch in range(3):  # 8 batches * 3 synthetic rows = 24 per epoch; S = 60
        for ids, k in rows_of(loader):
            assert k == 3 and max(ids[:3]) < 1000 <= min(ids[3:])
            syn_seen += ids[3:]
    assert sorted(syn_seen[:S]) == list(range(1000, 1000 + S))


def test_union_with_seed_004_fractions(files):
    # seed 004 §4.3: 50% of the real set + generated data worth 200% of the real set's size
    mix = MixConfig(mode="union", real_fraction=0.5, synthetic_fraction=2.0)
    loader = DualDomainLoader(files["real"], files["syn"], cfg(), mix)
    assert len(loader.real) == 12 and len(loader.synthetic) == 48
    assert subsets.class_counts(loader.real.labels) == {20: 3, 21: 3, 22: 3, 23: 3}
    got = rows_of(loader)
    assert len(got) == (12 + 48) // 8
    ids = [i for b, _ in got for i in b]
    assert len(set(ids)) == len(ids)
    assert {i for i in ids if i < 1000} <= set(loader.real.rows.tolist())
    for b, k in got:  # real rows first, the count varies with the draw
        assert all(i < 1000 for i in b[:k]) and all(i >= 1000 for i in b[k:])


def test_subset_index_file_drives_the_real_domain(files, tmp_path):
    src = BetonSource(files["real"])
    rows, record = subsets.make_subset(src, subsets.SubsetSpec(kind="per_class", n=4, seed=2))
    path = subsets.save_subset(str(tmp_path / "real_subset.json"), rows, record)
    back, _ = subsets.load_subset(path, src)
    loader = DualDomainLoader(files["real"], files["syn"], cfg(), real_subset=back)
    real_ids = {i for b, k in rows_of(loader) for i in b[:k]}
    assert real_ids == set(rows.tolist())  # sample_id = row for these files
    by_path = DualDomainLoader(files["real"], files["syn"], cfg(), real_subset=path)
    assert (by_path.real.rows == back).all()
    assert main_ok(["inspect", files["real"], "--subset", path])


def main_ok(argv):
    return cli(argv) == 0


def test_different_label_spaces_are_refused_naming_both(files):
    with pytest.raises(LabelSpaceError, match=r"real .*real\.beton.*synthetic .*compact\.beton"):
        DualDomainLoader(files["real"], files["compact"], cfg())
    DualDomainLoader(files["real"], files["compact"], cfg(), MixConfig(label_check="off"))


def test_bad_options(files):
    with pytest.raises(LoaderConfigError, match="cannot hold"):
        DualDomainLoader(files["real"], files["syn"], cfg(batch_size=1))
    with pytest.raises(LoaderConfigError, match="for training"):
        DualDomainLoader(files["real"], files["syn"], cfg(pipeline="eval"))
    with pytest.raises(LoaderConfigError, match="synthetic source is needed"):
        DualDomainLoader(files["real"], None, cfg())
    with pytest.raises(LoaderConfigError, match="synthetic_share"):
        MixConfig(synthetic_share=1.5)
    with pytest.raises(LoaderConfigError, match="backend"):
        LoaderConfig(backend="webdataset")


def test_single_synthetic_file_has_no_real_rows(files):
    loader = make_loader(files["syn"], cfg())
    assert all(b.num_real == 0 for b in loader)
    assert all(b.num_real == 8 for b in make_loader(files["real"], cfg()))


@pytest.mark.timeout(300)
def test_inspect_loader_reports_images_per_second(files, capsys):
    assert cli(["inspect", files["real"], "--loader", "torchvision", "--batches", "2",
                "--batch-size", "4", "--image-size", "16", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "torchvision train pipeline, 8 images in" in out and "images/s" in out


def test_inspect_errors_are_one_line(files, tmp_path, capsys):
    data = open(files["real"], "rb").read()
    cut = tmp_path / "cut.beton"
    cut.write_bytes(data[:len(data) - 100])
    assert cli(["inspect", str(cut), "--loader", "torchvision"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synthclone inspect: error: ") and "cut.beton" in err[0]
    with pytest.raises(BetonFormatError):
        make_loader(str(cut), cfg())
    other = tmp_path / "other.json"
    src = BetonSource(files["syn"])
    rows, rec = subsets.make_subset(src, subsets.SubsetSpec(kind="fraction", fraction=0.5))
    subsets.save_subset(str(other), rows, rec)
    assert cli(["inspect", files["real"], "--subset", str(other)]) == 2
    assert "made for files of sizes [60]" in capsys.readouterr().err
    np.testing.assert_array_equal(subsets.load_subset(str(other))[0], rows)


def test_configs_nest_into_a_command_config_with_flags():
    """The trainer nests LoaderConfig/MixConfig in its own config (engine.config helper)."""
    import dataclasses

    from engine.config import ArgumentParser, add_config_args, config_from_args
    from engine.errors import ConfigError

    @dataclasses.dataclass
    class Data:
        loader: LoaderConfig = dataclasses.field(default_factory=LoaderConfig)
        """How batches are decoded."""
        mix: MixConfig = dataclasses.field(default_factory=MixConfig)
        """How the domains share a batch."""

    p = ArgumentParser(prog="t")
    add_config_args(p, Data)
    args = p.parse_args(["--loader.batch-size", "32", "--loader.crop-scale", "0.35", "1",
                         "--no-loader.flip", "--mix.synthetic-share", "0.25"])
    c = config_from_args(Data, args, assignments=["mix.mode=union", "loader.backend=dali"])
    assert (c.loader.batch_size, c.loader.crop_scale, c.loader.flip) == (32, (0.35, 1.0), False)
    assert (c.mix.synthetic_share, c.mix.mode, c.loader.backend) == (0.25, "union", "dali")
    with pytest.raises(ConfigError, match="loader: crop_scale"):
        config_from_args(Data, p.parse_args(["--loader.crop-scale", "0.5", "0.1"]))

