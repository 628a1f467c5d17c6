"""A stand-in for ComfyUI v0.3.64 (commit a125cd84) that tests start as a real process.

What is real: the HTTP routes and their bodies, the websocket messages and their order, prompt
validation (driven by the recorded object_info), the queue, history, interrupt, ComfyUI's output
cache, model folders (extra_model_paths.yaml, legacy names, listing refreshed by directory mtime),
uploads and /view, and these nodes, run with Pillow: EmptyImage, LoadImage, LoadImageMask,
ImageInvert, ImageScale, SaveImage, PreviewImage, SaveImageWebsocket, ImageUpscaleWithModel (a resize
by the model's scale, one progress step per tile). Loaders open their files and check them as the
safetensors / torch readers do, failing with the same exception types and messages.

Custom node packs in `custom_nodes/` load and run as in ComfyUI (`custom_nodes.py`, and the
`folder_paths` module beside main.py that packs import).

What is not: no torch, no models run. Any other node class validates like ComfyUI's and then fails
with NotImplementedError when it runs. No browser-facing middlewares (Origin check, CORS, gzip).

Modules, in the order data flows: cli -> startup/folders -> custom_nodes -> catalog -> validation ->
prompt_queue -> execution (graph, caching, nodes, weightfiles, upscalers, images) -> server (websocket,
worker) -> routes/files; app wires them together.
"""
