"""Class catalog: ImageNet-1K / ImageNet-100 / ImageNet-R / ImageNet-A / custom class sets.

``imagenet_index()`` (wnid -> label) and ``class_names()`` (label -> name) are the public
label tables; ``loaders`` uses them (its one import of ``engine``).
"""
from engine.catalog.classes import (IMAGENET_NUM_CLASSES, ClassFileError, ClassInfo,
                                    ClassLookupError, ClassSet, class_names, get_class_set,
                                    imagenet_class, imagenet_index, imagenet_wnids, load_custom,
                                    resolve_imagenet)

__all__ = ["IMAGENET_NUM_CLASSES", "ClassFileError", "ClassInfo", "ClassLookupError", "ClassSet",
           "class_names", "get_class_set", "imagenet_class", "imagenet_index", "imagenet_wnids",
           "load_custom", "resolve_imagenet"]
