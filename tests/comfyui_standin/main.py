"""The ComfyUI stand-in, started like a ComfyUI checkout: `python main.py --listen 127.0.0.1 --port 8188 ...`.

It answers ComfyUI v0.3.64's HTTP and websocket API with the bodies and messages recorded from a real
server (tests/reference/comfyui), runs a few image nodes for real with Pillow and opens model files like
ComfyUI's loaders. See standin/__init__.py for what it does and does not do.
"""

import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from standin.app import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], standin_dir=HERE))
