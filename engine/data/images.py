"""Images on disk held by path and decoded only when a batch needs them (issue 21: full-size data streams).

A reader of real data (Flickr30K, COCO, SNLI-VE, NLVR2) indexes its annotations and finds each image file
without decoding it: `find_image` checks that the file is there and that its first bytes are an image format's
signature (a text file given as an image is refused while the data is read, before any session exists), and
returns an `ImageFile`. Its pixels are decoded by `open()` when a batch draws the unit (engine/data/image_bank.py);
`size` reads the header only. A file whose signature is right but whose body cannot be decoded is reported
(one line naming the file) when it is first drawn.
"""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from engine.errors import SpecError

# first bytes of the formats Pillow decodes that image data sets ship in
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
DECODABLE = "PNG, JPEG, GIF, BMP, TIFF, WebP"


def pillow_reason(error: Exception) -> str | None:
    """Pillow's reason a file with an image's signature does not decode ("image file is truncated"), or None
    where it only says it cannot identify the file."""
    reason = str(error).splitlines()[0] if str(error) else ""
    return reason if reason and not reason.startswith("cannot identify image file") else None


def not_decodable(path, error: Exception | None = None) -> SpecError:
    """One line naming the file, and Pillow's reason where it has one: a PNG cut short reads "image file is
    truncated", which "not an image" would misname."""
    if error is not None and (reason := pillow_reason(error)):
        return SpecError(f"{path} does not decode ({reason}); replace the file, or drop its records (`data info "
                         "--decode-images` lists every such file)")
    return SpecError(f"{path} is not an image this reader can decode ({DECODABLE})")


def decoding_error(image: "ImageFile") -> str | None:
    """Why `image` does not decode, in a few words (None when it does): what `data info --decode-images` lists."""
    try:
        with Image.open(image.path) as opened:
            opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return pillow_reason(error) or f"not an image this reader can decode ({DECODABLE})"
    return None


def looks_like_image(path: str) -> bool:
    with open(path, "rb", buffering=0) as handle:  # unbuffered: 12 bytes read, not a block
        head = handle.read(12)
    return head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


class ImageFile:
    """One image file, decoded on demand. Equal (and hashed) by path."""

    __slots__ = ("path",)

    def __init__(self, path: str | Path):
        self.path = str(path)

    def open(self) -> Image.Image:
        """The RGB pixels; SpecError naming the file when it cannot be decoded."""
        try:
            with Image.open(self.path) as image:
                return image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as error:  # UnidentifiedImageError: an OSError
            raise not_decodable(self.path, error) from None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) from the header, without decoding the pixels."""
        try:
            with Image.open(self.path) as image:
                return image.size
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise not_decodable(self.path, error) from None

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.asarray(self.open(), dtype=dtype)

    def __eq__(self, other) -> bool:
        return isinstance(other, ImageFile) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"ImageFile({self.path!r})"


def decoded(image) -> Image.Image:
    """A PIL image, from an in-memory image (the built-in worlds) or an `ImageFile`."""
    return image.open() if isinstance(image, ImageFile) else image


# where Flickr30K's pictures are found under a data folder: LAVIS writes flickr30k-images/, the widely shared
# download unpacks flickr30k_images/ (SNLI-VE's pictures are Flickr30K's)
FLICKR_IMAGE_DIRS = ("", "images", "flickr30k-images", "flickr30k_images", "flickr30k_images/flickr30k_images")


def find_image(root: Path, relative: str, subdirs: tuple[str, ...] = ("", "images")) -> ImageFile | None:
    """The image file at `relative` under the first of `root/<subdir>` that has it, undecoded; None when none
    has it. SpecError naming the file when it is not an image, or when `relative` leaves `root`."""
    relative = relative.removeprefix("./")
    if os.path.isabs(relative) or os.path.normpath(relative).split(os.sep)[0] == "..":
        raise SpecError(f"image path {relative} in {root} leaves the data directory; image paths are relative to it")
    for subdir in subdirs:
        candidate = os.path.join(root, subdir, relative) if subdir else os.path.join(root, relative)
        try:
            if not looks_like_image(candidate):
                raise not_decodable(candidate)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except PermissionError:
            raise SpecError(f"{candidate} cannot be read (permission denied)") from None
        return ImageFile(candidate)
    return None
