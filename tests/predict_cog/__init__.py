"""predict.py through the real Cog runtime: coglet serving `Predictor`, real predictions over HTTP.

ComfyUI is the stand-in (`tests/comfyui_standin`), started by the predictor exactly as a checkout would be
(or a real ComfyUI when `COMFYUI_PATH` is set). Weights come from a real HTTP server on 127.0.0.1 that a
test manifest (`WEIGHTS_MANIFEST_EXTRA`) points at. Returned files are decoded and looked at.
"""
