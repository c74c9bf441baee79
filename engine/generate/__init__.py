"""The generation engine: a plan becomes a .beton (``synthclone generate``).

Along the data path:

    cli.py          ``synthclone generate``: flags -> GenerateConfig -> generate()
    config.py       GenerateConfig, shard parsing, output paths
    runner.py       generate(plan, out, cfg): the table of contents (setup, output, model,
                    writer, loop, finish)
    output.py       the shard's .beton and run folder; start / resume / already-complete
    models.py       hub id / diffusers folder / checkpoint file / built-in -> a pipeline
    builtins.py     built-in random-weight models: tiny, tiny-sdxl, tiny-variation (tests),
                    sd15-arch, sdxl-arch (benchmarks)
    families.py     pipeline families: SD 1.x/2.x, SDXL, image variation (which rows each can
                    generate, which conditioner feeds the UNet)
    tokenizer.py    offline CLIP tokenizer from open_clip's BPE file
    setup_model.py  device/dtype/attention/channels_last/VAE slicing+tiling/torch.compile
    attention.py    attention backends (sdpa, xformers, math) in the ops registry
    conditioning.py what the UNet is conditioned on: SD text, SDXL text (two encoders, pooled,
                    time ids), CLIP image embeddings — as each diffusers pipeline computes them
    embeddings.py   text-embedding cache keyed by prompt
    schedulers.py   sampler names -> diffusers schedulers: pndm (PLMS), ddim, dpmpp
    batching.py     batch keys, grouping, per-row noise, re-sample seeds
    denoise.py      the denoising loop (text, img2img, image variation) and the VAE decode
    loop.py         batches through denoise -> tail (decode, guards, write), re-samples
    tail.py         the pipelined tail's worker thread and the uint8/resize postprocess
    guards.py       guard counters, NaN/Inf and blank detection, the CLIP filter
    images.py       real images for image-conditioned rows (folder or .beton)
    runlog.py       the run folder: config, state, throughput log, summary, contact sheet
"""
