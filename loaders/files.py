"""The one image-folder lister of the product (pack, label-ambiguity scoring, loaders, eval).

Rules (the same as torchvision's ``ImageFolder``, so our baseline and our packer see the same
files): an image is a file whose lower-cased name ends in :data:`IMAGE_EXTENSIONS`; hidden
files and folders (leading ``.``) are skipped; a class is a sub-folder of the root, and its
images are found recursively; classes and files are sorted by name (code-point order), so a
listing never depends on the file system's order. Symbolic links are followed.

Labels of class folders (:func:`folder_labels`): ImageNet-1K indices of wnid folder names
(``engine.catalog``, the label space real and synthetic sets share), or ``0..k-1`` in sorted
folder order (torchvision's ``ImageFolder``) with ``compact=True``.
"""
from __future__ import annotations

import os

from loaders.errors import LoadersError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ``IMG_EXTENSIONS``, compared case-insensitively."""


class ImageFolderError(LoadersError, ValueError):
    """A folder that is missing, not a folder, or holds no images where some are needed."""


def is_image_file(name: str) -> bool:
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str, recursive: bool = True) -> list[str]:
    """Sorted paths of the images under ``folder`` (recursively by default)."""
    _check_dir(folder)
    out: list[str] = []
    if not recursive:
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                if is_image_file(n) and os.path.isfile(os.path.join(folder, n))]
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, n) for n in sorted(files) if is_image_file(n)]
    return out


def class_folders(root: str) -> list[str]:
    """Sorted names of the (non-hidden) sub-folders of ``root``."""
    _check_dir(root)
    return sorted(e.name for e in os.scandir(root)
                  if not e.name.startswith(".") and e.is_dir(follow_symlinks=True))


def list_image_folder(root: str, allow_empty_classes: bool = True) -> list[tuple[str, str]]:
    """``[(image path, class folder name)]`` of an ImageFolder tree ``root/<class>/**/<image>``,
    sorted by class then path. Errors if ``root`` has no class folders or no images at all (or,
    with ``allow_empty_classes=False``, if any class folder is empty)."""
    classes = class_folders(root)
    if not classes:
        raise ImageFolderError(f"{root}: no class sub-folders (expected the ImageFolder layout "
                               "ROOT/<class>/<image>.jpg)")
    items: list[tuple[str, str]] = []
    for c in classes:
        files = list_images(os.path.join(root, c))
        if not files and not allow_empty_classes:
            raise ImageFolderError(f"{os.path.join(root, c)}: class folder holds no images "
                                   f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
        items += [(p, c) for p in files]
    if not items:
        raise ImageFolderError(f"{root}: no images in its {len(classes)} class folders "
                               f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    return items


def folder_labels(root: str, classes, compact: bool = False, *, error=ImageFolderError,
                  hint: str = "use compact labels") -> dict[str, int]:
    """``{class folder name: label}`` of the class folders ``classes`` of ``root`` (module
    doc). A folder name that is not an ImageNet-1K wnid is an ``error`` (the caller's
    :class:`~loaders.errors.LoadersError` type) ending in ``hint``: how to ask for compact labels
    in the caller's terms (``"pass --compact-labels"``)."""
    classes = sorted(set(classes))
    if compact:
        return {c: k for k, c in enumerate(classes)}
    index = wnid_index(error=error, hint=hint)
    unknown = [c for c in classes if c not in index]
    if unknown:
        raise error(f"{root}: folder names {unknown[:5]} are not ImageNet-1K wnids; rename them "
                    f"or {hint}")
    return {c: index[c] for c in classes}


def wnid_index(*, error=ImageFolderError, hint: str = "use compact labels") -> dict[str, int]:
    """``{wnid: ImageNet-1K label}`` from ``engine.catalog``; an ``error`` ending in ``hint``
    when the catalog cannot be read (see :func:`folder_labels`)."""
    try:
        from engine.catalog import imagenet_index  # loaders may import the catalog

        return imagenet_index()
    except (ImportError, LookupError, OSError) as exc:
        raise error(f"the ImageNet-1K class list is unavailable (engine.catalog/timm: {exc}): "
                    f"{hint} to number the classes 0..k-1") from None


def _check_dir(path: str) -> None:
    if not os.path.exists(path):
        raise ImageFolderError(f"{path}: no such folder")
    if not os.path.isdir(path):
        raise ImageFolderError(f"{path}: not a folder")
