"""`main.py` of the image test's "ComfyUI" checkout (`mirrors.make_comfyui_mirror` puts this file there).

It runs the project's stand-in (tests/comfyui_standin, inside the same checkout) with the checkout as its
base directory, as ComfyUI's folder_paths takes the folder of its own files, so custom node packs that
`python -m nodekit install` put in `<checkout>/custom_nodes` load as in a real checkout. (Started from
its own folder, the stand-in takes a temporary base instead, so that it never writes into this
repository.) A `--base-directory` given on the command line still wins, as in ComfyUI.
"""

import os
import sys

CHECKOUT = os.path.dirname(os.path.realpath(__file__))
STANDIN = os.path.join(CHECKOUT, "tests", "comfyui_standin")
if STANDIN not in sys.path:
    sys.path.insert(0, STANDIN)

from standin.app import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(arg.split("=", 1)[0] == "--base-directory" for arg in argv):
        argv = ["--base-directory", CHECKOUT, *argv]
    raise SystemExit(main(argv, standin_dir=STANDIN))
