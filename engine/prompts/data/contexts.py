"""Curated vocabularies of the offline contextual-diversification backend (seed 003 §3.2 aspects).

A description is ``<foreground>, <background>, <lighting>, <camera angle>``, the four aspects the
paper asks the LLM for; the camera angles are the ones in the paper's Appendix D examples.
Every entry is class-agnostic: it must read sensibly for an animal, an object or a food.
16 x 30 x 12 x 10 = 57,600 descriptions per class.
"""

FOREGROUNDS = (
    "{c}",
    "a single {c} in the foreground",
    "{c} next to a person",
    "{c} held or touched by a hand",
    "{c} partially hidden behind leaves",
    "{c} among other everyday objects",
    "{c} seen up close with fine details",
    "{c} slightly off-center in the frame",
    "{c} on the ground",
    "{c} on a wooden surface",
    "{c} near a window",
    "{c} with a child nearby",
    "{c} reflected in a puddle",
    "{c} beside a bicycle",
    "{c} surrounded by people",
    "{c} in a cluttered scene",
)
"""Foreground: the class and what is with it (``{c}`` is the class text)."""

BACKGROUNDS = (
    "busy city street", "dense forest", "sandy beach", "home kitchen", "living room",
    "public park", "mountain landscape", "snowy field", "desert dunes", "flower garden",
    "outdoor market", "lake shore", "farmyard", "office", "workshop", "museum hall",
    "open grassland", "river bank", "parking lot", "backyard", "rainy sidewalk",
    "countryside road", "harbor with boats", "rocky coast", "stadium", "classroom",
    "garage", "library shelves", "meadow with wildflowers", "tropical jungle",
)
"""Background objects and places."""

LIGHTING = (
    "natural daylight", "golden hour", "overcast sky", "soft morning light",
    "harsh midday sun", "dim indoor lighting", "fluorescent light", "warm lamp light",
    "sunset backlight", "dappled sunlight", "studio lighting", "night with street lights",
)
"""Lighting conditions."""

CAMERA_ANGLES = (
    "close-up shot", "medium shot", "wide shot", "low-angle shot", "overhead shot",
    "eye-level shot", "macro shot", "long shot", "panoramic shot", "high-angle shot",
)
"""Camera angles (those of the paper's Appendix D examples, plus eye-level and high-angle)."""
