"""Modifiers of the S0 complex prompts (seed 000 A.5): class-agnostic words mimicking human prompts.

5 framings x 8 detail words x 5 quality words = 200 prompts per category name.
"""

FRAMINGS = (
    "{c}",
    "a photo of {a} {c}",
    "a picture of {a} {c}",
    "a photograph of {a} {c}",
    "a close-up photo of {a} {c}",
)
"""How the subject is introduced; ``{a}`` is the article (a/an) of the name ``{c}``."""

DETAILS = (
    "highly detailed",
    "realistic",
    "photorealistic",
    "professional photography",
    "sharp focus",
    "natural lighting",
    "studio lighting",
    "depth of field",
)
"""Style and lighting words that fit any ImageNet class."""

QUALITY = (
    "4k",
    "8k",
    "hd",
    "high resolution",
    "award winning",
)
"""Quality boosters as users type them."""
