"""`ComfyUI` starting a real server process and running workflows on it, over real sockets.

The server is the stand-in in `tests/comfyui_standin/` (started by `ComfyUI.start()` exactly as a ComfyUI
checkout would be), or a real ComfyUI when `COMFYUI_PATH` (a checkout to start) or `COMFYUI_URL` (a
running server, which must have `tiny_compact_x2.safetensors` in its `upscale_models`, as the recorded one
did; tests that need their own server or its weights folder skip) is set in the environment.
One server serves the whole package (its conftest); tests that kill or never start a server make their own.
"""
