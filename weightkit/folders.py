"""ComfyUI's model-folder vocabulary: canonical folder names, legacy names, model file extensions."""

from __future__ import annotations

# ComfyUI keeps old folder names working; both spellings mean one folder type.
LEGACY_FOLDERS: dict[str, str] = {"clip": "text_encoders", "unet": "diffusion_models"}

# Directories ComfyUI searches under models/ for a folder type, in its order (folder_paths.py).
MODEL_SUBDIRS: dict[str, tuple[str, ...]] = {
    "text_encoders": ("text_encoders", "clip"),
    "diffusion_models": ("unet", "diffusion_models"),
    "controlnet": ("controlnet", "t2i_adapter"),
}

# What ComfyUI lists in a model folder, plus formats custom nodes load.
MODEL_EXTENSIONS: tuple[str, ...] = (
    ".safetensors",
    ".sft",
    ".ckpt",
    ".pt",
    ".pt2",
    ".pth",
    ".bin",
    ".pkl",
    ".onnx",
    ".gguf",
)


def canonical_folder(folder: str) -> str:
    """The folder type ComfyUI means by `folder` (`clip` is `text_encoders`)."""
    return LEGACY_FOLDERS.get(folder, folder)


def model_subdirs(folder: str) -> tuple[str, ...]:
    """Directories under `<ComfyUI>/models` that hold `folder`, in ComfyUI's search order."""
    folder = canonical_folder(folder)
    return MODEL_SUBDIRS.get(folder, (folder,))


def has_model_extension(value: str) -> bool:
    return value.lower().endswith(MODEL_EXTENSIONS)
