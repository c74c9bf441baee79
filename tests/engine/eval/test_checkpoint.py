"""Checkpoint loading: plain state dicts, wrapped/prefixed dicts, run folders, DualBN
checkpoints, and the errors a user can fix."""
import os

import pytest
import torch
import yaml

from engine.eval.checkpoint import CheckpointError, build_model, load_model, run_data_info
from tests.engine.eval import fakes

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _reference(name, path, num_classes=1000):
    model, _ = build_model(name, num_classes)
    model.load_state_dict(torch.load(path))
    return model.eval()(X)


def test_plain_state_dict_with_model_name(tmp_path):
    path = fakes.tiny_checkpoint(str(tmp_path / "m.pt"))
    loaded = load_model(path, model="test_resnet")
    assert loaded.num_classes == 1000 and loaded.source == "timm" and loaded.head_name == "fc"
    torch.testing.assert_close(loaded.model(X), _reference("test_resnet", path))
    assert len(loaded.sha256) == 64 and loaded.run_dir is None


def test_torchvision_model_and_compact_head(tmp_path):
    path = fakes.tiny_checkpoint(str(tmp_path / "r18.pt"), "resnet18", num_classes=100)
    loaded = load_model(path, model="resnet18")
    assert loaded.source == "torchvision" and loaded.num_classes == 100
    assert loaded.head.in_features == 512
    torch.testing.assert_close(loaded.model(X), _reference("resnet18", path, 100))


def test_wrapped_and_prefixed_state_dicts(tmp_path):
    ref = fakes.tiny_checkpoint(str(tmp_path / "ref.pt"))
    sd = torch.load(ref)
    wrapped = {"epoch": 3, "model": {"module._orig_mod." + k: v for k, v in sd.items()},
               "optimizer": {"state": {}, "param_groups": []}}
    torch.save(wrapped, tmp_path / "ckpt.pt")
    loaded = load_model(str(tmp_path / "ckpt.pt"), model="test_resnet")
    assert any("'module.'" in n for n in loaded.notes) and any("_orig_mod" in n
                                                               for n in loaded.notes)
    torch.testing.assert_close(loaded.model(X), _reference("test_resnet", ref))


def test_dual_bn_checkpoint_evaluates_the_real_branch(tmp_path):
    try:
        from engine.ops.dual_bn import convert_dual_bn
    except ImportError:
        from engine.ops.dual_bn_convert import convert_dual_bn
    torch.manual_seed(1)
    plain, _ = build_model("resnet18", 10)
    dual = convert_dual_bn(build_model("resnet18", 10)[0])
    dual.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():  # make the synthetic branch differ from the real one
        for name, p in dual.named_parameters():
            if ".syn_" in name or name.startswith("syn_"):
                p.add_(1.0)
    sd = dual.state_dict()
    assert any(".syn_" in k for k in sd)
    torch.save(sd, tmp_path / "dual.pt")
    loaded = load_model(str(tmp_path / "dual.pt"), model="resnet18")
    assert any("DualBN synthetic-branch" in n for n in loaded.notes)
    torch.testing.assert_close(loaded.model(X), plain.eval()(X))


def test_run_folder_names_the_model_and_holds_the_checkpoint(tmp_path):
    syn = fakes.beton(str(tmp_path / "syn.beton"), [0, 1, 2])
    run = fakes.run_folder(str(tmp_path / "run"), data={"real": "real.beton", "synthetic": syn})
    loaded = load_model(run)
    assert loaded.arch == "test_resnet" and loaded.run_dir == run
    assert loaded.path == os.path.join(run, "model_real.pt")
    assert run_data_info(loaded.run_config) == {"kind": "mixed", "synthetic_images": 3}
    assert run_data_info({"train": {"data": {"real": "r.beton"}}})["kind"] == "real"
    # a checkpoint file inside a run folder (or its checkpoints/) finds the run's config
    os.makedirs(os.path.join(run, "checkpoints"))
    os.replace(loaded.path, os.path.join(run, "checkpoints", "step_100.pt"))
    assert load_model(os.path.join(run, "checkpoints", "step_100.pt")).arch == "test_resnet"
    assert load_model(run).path.endswith("step_100.pt")  # the only one
    fakes.tiny_checkpoint(os.path.join(run, "checkpoints", "step_200.pt"))
    with pytest.raises(CheckpointError, match="several checkpoints.*step_100.pt, step_200.pt"):
        load_model(run)


def test_user_errors(tmp_path):
    path = fakes.tiny_checkpoint(str(tmp_path / "m.pt"))
    with pytest.raises(CheckpointError, match="which architecture.*--model"):
        load_model(path)
    with pytest.raises(CheckpointError, match="unknown model 'resnet5000'"):
        load_model(path, model="resnet5000")
    with pytest.raises(CheckpointError, match="does not fit timm test_vit|no head.weight|no fc"):
        load_model(path, model="test_vit")
    with pytest.raises(CheckpointError, match="does not fit torchvision resnet18"):
        load_model(path, model="resnet18")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(str(tmp_path / "missing.pt"), model="resnet18")
    os.makedirs(tmp_path / "empty_run")
    with pytest.raises(CheckpointError, match="no checkpoint in this folder"):
        load_model(str(tmp_path / "empty_run"), model="resnet18")
    torch.save({"model": torch.load(path), "obj": _Opaque()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="--unsafe-load"):
        load_model(str(tmp_path / "pickled.pt"), model="test_resnet")
    assert load_model(str(tmp_path / "pickled.pt"), model="test_resnet",
                      unsafe=True).num_classes == 1000
    with open(tmp_path / "empty_run" / "config.yaml", "w") as f:
        yaml.safe_dump({"train": {"model": {"name": "test_resnet"}}}, f)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_model(str(tmp_path / "empty_run"))


class _Opaque:
    pass


def test_vision_transformer_size_from_the_run_and_a_clear_crop_error(tmp_path):
    import yaml

    from engine.eval.checkpoint import check_input_size

    run = tmp_path / "vit"
    run.mkdir()
    torch.manual_seed(0)
    model, _ = build_model("vit_tiny_patch16_224", 10, img_size=96)
    torch.save(model.state_dict(), run / "model_real.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"train": {"model": {"name": "vit_tiny_patch16_224", "img_size": 96}}}))
    loaded = load_model(str(run))
    x = torch.randn(1, 3, 96, 96)
    torch.testing.assert_close(loaded.model(x), model.eval()(x))
    check_input_size(loaded, 96)
    with pytest.raises(CheckpointError, match="96x96 inputs only; pass --crop 96"):
        check_input_size(loaded, 224)
    check_input_size(load_model(fakes.tiny_checkpoint(str(tmp_path / "r.pt")),
                                model="test_resnet"), 224)  # CNNs take any size
