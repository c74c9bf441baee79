"""Class catalog: ImageNet-1K / ImageNet-100 / ImageNet-R / ImageNet-A / custom class sets."""
from engine.catalog.classes import (IMAGENET_NUM_CLASSES, ClassInfo, ClassLookupError, ClassSet,
                                    get_class_set, imagenet_class, load_custom, resolve_imagenet)

__all__ = ["IMAGENET_NUM_CLASSES", "ClassInfo", "ClassLookupError", "ClassSet", "get_class_set",
           "imagenet_class", "load_custom", "resolve_imagenet"]
