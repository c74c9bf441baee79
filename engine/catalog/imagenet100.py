"""ImageNet-100: the 100 classes named in seed 001 (Sariyildiz et al., supplementary, Figs. 9-13).

The names map to wnids through the ImageNet-1K lemma table (first lemma, then any lemma); the
result is the 100-class subset of Tian et al. (CMC), pinned by ``tests/engine/test_catalog.py``.
"""

IMAGENET100_NAMES = (
    # Figure 9
    "robin", "Gila monster", "hognose snake", "garter snake", "green mamba", "garden spider",
    "lorikeet", "goose", "rock crab", "fiddler crab", "American lobster", "little blue heron",
    "American coot", "Chihuahua", "Shih-Tzu", "papillon", "toy terrier", "Walker hound",
    "English foxhound", "borzoi",
    # Figure 10
    "Saluki", "American Staffordshire terrier", "Chesapeake Bay retriever", "vizsla", "kuvasz",
    "komondor", "Rottweiler", "Doberman", "boxer", "Great Dane", "standard poodle",
    "Mexican hairless", "coyote", "African hunting dog", "red fox", "tabby", "meerkat",
    "dung beetle", "walking stick", "leafhopper",
    # Figure 11
    "hare", "wild boar", "gibbon", "langur", "ambulance", "bannister", "bassinet", "boathouse",
    "bonnet", "bottlecap", "car wheel", "chime", "cinema", "cocktail shaker",
    "computer keyboard", "Dutch oven", "football helmet", "gasmask", "hard disc", "harmonica",
    # Figure 12
    "honeycomb", "iron", "jean", "lampshade", "laptop", "milk can", "mixing bowl", "modem",
    "moped", "mortarboard", "mousetrap", "obelisk", "park bench", "pedestal", "pickup",
    "pirate", "purse", "reel", "rocking chair", "rotisserie",
    # Figure 13
    "safety pin", "sarong", "ski mask", "slide rule", "stretcher", "theater curtain", "throne",
    "tile roof", "tripod", "tub", "vacuum", "window screen", "wing", "head cabbage",
    "cauliflower", "pineapple", "carbonara", "chocolate sauce", "gyromitra", "stinkhorn",
)
