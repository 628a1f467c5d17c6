"""ComfyUI's IMAGE and MASK values, held as Pillow images instead of float tensors.

An IMAGE is a batch of same-sized RGB images; a MASK a batch of single-channel ("L") images where 255
means masked (ComfyUI's 1.0). Their `str()` is what an `execution_error` shows in `current_inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class ImageBatch:
    images: tuple[Image.Image, ...]

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("an IMAGE batch needs at least one image")

    @property
    def width(self) -> int:
        return self.images[0].width

    @property
    def height(self) -> int:
        return self.images[0].height

    def __len__(self) -> int:
        return len(self.images)

    def __str__(self) -> str:
        return f"IMAGE[batch={len(self)}, height={self.height}, width={self.width}, channels=3]"


@dataclass(frozen=True)
class MaskBatch:
    masks: tuple[Image.Image, ...]

    def __len__(self) -> int:
        return len(self.masks)

    def __str__(self) -> str:
        first = self.masks[0]
        return f"MASK[batch={len(self)}, height={first.height}, width={first.width}]"


def solid_batch(width: int, height: int, batch_size: int, rgb: tuple[int, int, int]) -> ImageBatch:
    image = Image.new("RGB", (width, height), rgb)
    return ImageBatch(tuple(image.copy() for _ in range(batch_size)))


def empty_mask(size: int = 64) -> Image.Image:
    return Image.new("L", (size, size), 0)
