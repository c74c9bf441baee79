"""The generation engine: a plan becomes a .beton (``synthclone generate``).

    models.py      hub id / diffusers folder / checkpoint file / built-in tiny, sd15-arch
    tokenizer.py   offline CLIP tokenizer from open_clip's BPE file
    samplers.py    pndm (PLMS), ddim, dpmpp (DPM-Solver++)
    batching.py    batch grouping, per-row noise, re-sample seeds
    embeddings.py  text-embedding cache keyed by prompt
    attention.py   attention-backend registry (sdpa, xformers, math)
    setup_model.py device/dtype/attention/channels_last/VAE slicing+tiling/torch.compile
    sampling.py    the denoising loop (text, img2img, image variation) and the VAE decode
    tail.py        the pipelined tail: decode -> uint8 -> resize -> writer, on a worker thread
    guards.py      NaN/Inf and blank re-sampling, the CLIP filter
    images.py      real images for image-conditioned rows (folder or .beton)
    runner.py      generate(plan, out, cfg): shards, resume, the loop, finalize
    runlog.py      the run folder: config, state, throughput log, summary, contact sheet
    config.py      GenerateConfig, shard parsing, output paths
    cli.py         ``synthclone generate``
"""
