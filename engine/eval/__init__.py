"""Evaluation: the papers' metrics on local test sets, robustness, transfer, diagnostics, plots.

Along the data path (one module per family):

- test sets: ``sets`` (names, layouts, .beton), ``imagenet_val`` (flat val + label files),
  ``objectnet`` (its folders and mapping files), ``transfer_sets`` (torchvision datasets);
- model: ``checkpoint`` (state dicts, run folders), ``images`` (transforms, loader,
  fingerprints), ``inference`` (logits + features in one pass, cached);
- metrics: ``labels`` (ImageNet-1K label space), ``metrics`` (top-k over shared classes,
  long-tail splits), ``robustness`` (AG, ER, logit fit), ``transfer`` (linear probe, k-NN),
  ``feature_stats`` (sparsity, intra-class distance, redundancy, coding length);
- datasets: ``clip_stats``, ``inception`` (IS, FID), ``detector`` (seed 000 A.7);
- pipelines and outputs: ``evaluate``, ``evaluate_data``, ``plots``, ``report``, ``cli``.
"""
