"""Test helper: write a diffusers Stable Diffusion pipeline as one original-layout (LDM)
checkpoint file, so ``from_single_file`` can be tested on a saved tiny model.

The key layout is the one of CompVis' ``ldm`` code (``model.diffusion_model.*``,
``first_stage_model.*``, ``cond_stage_model.transformer.*``) for SD-1.x pipelines, and of
Stability's ``sgm`` code for SDXL (``conditioner.embedders.0.transformer.*``: the CLIP ViT-L
text encoder in transformers' layout; ``conditioner.embedders.1.model.*``: OpenCLIP bigG in
open_clip's layout, fused q/k/v; ``label_emb``: the UNet's added embedding).
"""
from __future__ import annotations

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]
VAE_RESNET = [("conv_shortcut", "nin_shortcut")]
VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
            ("to_out.0", "proj_out")]


def _sub(rest: str, pairs) -> str:
    for old, new in pairs:
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def unet_to_ldm(sd: dict, lpb: int) -> dict:
    """diffusers UNet2DConditionModel state dict -> ldm keys (``lpb``: layers per block)."""
    out = {}
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
           "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
    for k, v in sd.items():
        p = k.split(".")
        head, tail = ".".join(p[:-1]), p[-1]
        if head in top:
            out[f"{top[head]}.{tail}"] = v
            continue
        if p[0] == "down_blocks":
            i, kind = int(p[1]), p[2]
            if kind == "downsamplers":
                key = f"input_blocks.{(i + 1) * (lpb + 1)}.0.op.{'.'.join(p[5:])}"
            else:
                j, rest = int(p[3]), ".".join(p[4:])
                idx = 1 + i * (lpb + 1) + j
                key = (f"input_blocks.{idx}.0.{_sub(rest, RESNET)}" if kind == "resnets"
                       else f"input_blocks.{idx}.1.{rest}")
        elif p[0] == "mid_block":
            j, rest = int(p[2]), ".".join(p[3:])
            key = (f"middle_block.{2 * j}.{_sub(rest, RESNET)}" if p[1] == "resnets"
                   else f"middle_block.1.{rest}")
        elif p[0] == "up_blocks":
            i, kind = int(p[1]), p[2]
            if kind == "upsamplers":
                has_attn = any(x.startswith(f"up_blocks.{i}.attentions.") for x in sd)
                key = f"output_blocks.{i * (lpb + 1) + lpb}.{2 if has_attn else 1}.{'.'.join(p[4:])}"
            else:
                j, rest = int(p[3]), ".".join(p[4:])
                idx = i * (lpb + 1) + j
                key = (f"output_blocks.{idx}.0.{_sub(rest, RESNET)}" if kind == "resnets"
                       else f"output_blocks.{idx}.1.{rest}")
        else:
            raise KeyError(f"unexpected UNet key {k}")
        out[key] = v
    return out


def vae_to_ldm(sd: dict, levels: int) -> dict:
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        part = p[0]                                     # encoder / decoder / quant convs
        if part not in ("encoder", "decoder"):
            out[k] = v
            continue
        rest = p[1:]
        if rest[0] in ("down_blocks", "up_blocks"):
            i = int(rest[1]) if rest[0] == "down_blocks" else levels - 1 - int(rest[1])
            name = "down" if rest[0] == "down_blocks" else "up"
            if rest[2] == "resnets":
                key = f"{name}.{i}.block.{rest[3]}.{_sub('.'.join(rest[4:]), VAE_RESNET)}"
            else:
                key = f"{name}.{i}.{'downsample' if name == 'down' else 'upsample'}." + \
                      ".".join(rest[4:])
        elif rest[0] == "mid_block":
            if rest[1] == "resnets":
                key = f"mid.block_{int(rest[2]) + 1}.{_sub('.'.join(rest[3:]), VAE_RESNET)}"
            else:
                key = f"mid.attn_1.{_sub('.'.join(rest[3:]), VAE_ATTN)}"
                if v.dim() == 2:
                    v = v[:, :, None, None]             # linear -> 1x1 conv weights
        elif rest[0] == "conv_norm_out":
            key = "norm_out." + ".".join(rest[1:])
        else:
            key = ".".join(rest)
        out[f"{part}.{key}"] = v
    return out


def _text_key(k: str) -> str:
    """ldm keeps transformers' old ``text_model.`` level (newer CLIPTextModel is flat)."""
    return k if k.startswith("text_model.") else "text_model." + k


def export_single_file(pipe, path: str) -> None:
    """Save ``pipe`` (SD-1.x layout) as one .safetensors checkpoint in the ldm layout."""
    from safetensors.torch import save_file

    unet = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)
    vae = vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels))
    sd = {**{f"model.diffusion_model.{k}": v for k, v in unet.items()},
          **{f"first_stage_model.{k}": v for k, v in vae.items()},
          **{f"cond_stage_model.transformer.{_text_key(k)}": v
             for k, v in pipe.text_encoder.state_dict().items()}}
    save_file({k: v.contiguous() for k, v in sd.items()}, path)


OPEN_CLIP_LAYER = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                   ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj")]


def text_to_open_clip(sd: dict) -> dict:
    """transformers ``CLIPTextModelWithProjection`` -> open_clip text tower keys."""
    out, qkv = {}, {}
    top = {"text_model.embeddings.token_embedding.weight": "token_embedding.weight",
           "text_model.embeddings.position_embedding.weight": "positional_embedding",
           "text_model.final_layer_norm.weight": "ln_final.weight",
           "text_model.final_layer_norm.bias": "ln_final.bias"}
    for k, v in sd.items():
        if k in top:
            out[top[k]] = v
        elif k == "text_projection.weight":
            out["text_projection"] = v.T.contiguous()
        elif k.startswith("text_model.encoder.layers."):
            i, rest = k[len("text_model.encoder.layers."):].split(".", 1)
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj",
                                                                         "v_proj"):
                _, proj, kind = rest.split(".")
                qkv.setdefault((i, kind), {})[proj] = v
                continue
            out[f"transformer.resblocks.{i}.{_sub(rest, OPEN_CLIP_LAYER)}"] = v
        elif k.endswith("position_ids"):
            continue
        else:
            raise KeyError(f"unexpected text encoder key {k}")
    for (i, kind), parts in qkv.items():
        out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch_cat(
            [parts["q_proj"], parts["k_proj"], parts["v_proj"]])
    return out


def torch_cat(xs):
    import torch

    return torch.cat(xs)


def export_sdxl_single_file(pipe, path: str) -> None:
    """Save ``pipe`` (an SDXL pipeline) as one .safetensors checkpoint in the sgm layout."""
    from safetensors.torch import save_file

    unet = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)
    vae = vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels))
    sd = {**{f"model.diffusion_model.{k}": v for k, v in unet.items()},
          **{f"first_stage_model.{k}": v for k, v in vae.items()},
          **{f"conditioner.embedders.0.transformer.{_text_key(k)}": v
             for k, v in pipe.text_encoder.state_dict().items()},
          **{f"conditioner.embedders.1.model.{k}": v
             for k, v in text_to_open_clip(pipe.text_encoder_2.state_dict()).items()}}
    save_file({k: v.contiguous() for k, v in sd.items()}, path)
