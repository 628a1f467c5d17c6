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

# ComfyUI's own folder types (folder_paths.py, ComfyUI 0.3.64), in its registration order; each is
# searched in `<ComfyUI>/models/<subdir>` for the subdirs of `model_subdirs()`.
COMFYUI_FOLDERS: tuple[str, ...] = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
)

# Folders ComfyUI also searches inside its output directory, last (where CheckpointSave and friends write);
# folder type → subdirectory of the output directory (main.py registers them as 'clip' etc.).
OUTPUT_SUBDIRS: dict[str, str] = {
    "checkpoints": "checkpoints",
    "text_encoders": "clip",
    "vae": "vae",
    "diffusion_models": "diffusion_models",
    "loras": "loras",
}

# The folder type of textual-inversion embeddings, named in prompts as `embedding:NAME`.
EMBEDDINGS = "embeddings"

# `embedding:NAME` without an extension: ComfyUI tries NAME, then NAME with each of these, in order.
EMBEDDING_EXTENSIONS: tuple[str, ...] = (".safetensors", ".pt", ".bin")

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
