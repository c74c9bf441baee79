"""synthclone engine: class catalog, prompts, plan, generation, ops, training and evaluation."""
__version__ = "0.1.0"
