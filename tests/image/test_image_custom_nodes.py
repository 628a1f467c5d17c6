"""cog.yaml's custom node line as written (`python -m nodekit install`), proved in the image on both bases.

The test base image holds a git mirror of two tiny packs and a lock pinning them (`node_packs.py`,
`mirrors.py`; `CUSTOM_NODES_GIT_BASE` and `CUSTOM_NODES_LOCK` set in it as `COMFYUI_REPO` is for
ComfyUI), so the build line installs them: code at the lock's commits from the mirror, the requirement
(`webcolors`) from PyPI into the base's Python, externally managed or not. Then, with no network, the
predictor's setup says each pack is at its commit, and a workflow runs nodes of both packs on the pack
loader's weight, baked into the image by the weight-baking line.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.image.container import data_uri_bytes
from tests.image.engine import DockerEngine
from tests.image.local_images import PACKS_MIRROR
from tests.image.model_images import ModelImages
from tests.image.node_packs import (
    COLOUR_NAMES,
    CUSTOM_NODES,
    OWNER,
    REQUIREMENT,
    TINT_FOLDER,
    TINT_NAME,
    TINTS,
    assert_packs_loaded,
    expected_text,
    workflow,
)
from tests.image.report import REPORT

PYTHON_FACTS = (
    "import importlib.metadata as m, importlib.util as u, os, sysconfig; "
    "marker = os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'); "
    "spec = u.find_spec('webcolors'); "
    "print(m.version('webcolors') if spec else None, spec.origin if spec else None, os.path.isfile(marker))"
)
# In the running model image: the facts, `nodekit status` as the image has it, and the installer run again
# into a new ComfyUI folder (from the base's mirror, no network); each part's output, then its exit status.
IN_THE_IMAGE = f"""
python -c "{PYTHON_FACTS}"; echo "exit $?"; echo ----
cd /src && python -m nodekit status 2>&1; echo "exit $?"; echo ----
mkdir -p /tmp/comfy && COMFYUI_PATH=/tmp/comfy COMFYUI_PYTHON=python python -m nodekit -v install 2>&1
echo "exit $?"
"""


def parts(out: str) -> list[tuple[str, int]]:
    """The output of a script of IN_THE_IMAGE's form: each part's text and exit status."""
    found = []
    for part in out.split("----\n"):
        text, _, code = part.rstrip("\n").rpartition("exit ")
        found.append((text, int(code)))
    return found


@pytest.fixture(scope="module")
def in_the_image(engine: DockerEngine, images: ModelImages, exact_container) -> dict[str, tuple[str, int]]:
    script = f'python -c "{PYTHON_FACTS}"; echo "exit $?"'
    base = engine.text(
        "run", "--rm", "--network", "none", "--entrypoint", "bash", images.base.tag, "-c", script
    )
    facts, status, reinstall = parts(exact_container.exec("bash", "-c", IN_THE_IMAGE))
    return {"base facts": parts(base)[0], "facts": facts, "status": status, "reinstall": reinstall}


def test_the_build_line_installed_the_locked_packs_and_their_requirement_into_the_bases_python(
    images: ModelImages, in_the_image
):
    managed = str(images.variant == "externally-managed")
    assert in_the_image["base facts"] == (f"None None {managed}\n", 0)  # the base lacks webcolors
    facts, code = in_the_image["facts"]
    installed_version, origin, marker = facts.split()
    # In the system Python's site-packages, past PEP 668's marker on the externally managed base.
    assert (installed_version, marker) == (REQUIREMENT[1], managed) and origin.startswith("/usr/"), facts
    out, code = in_the_image["status"]
    assert code == 0, out
    for pack, commit in images.base.pack_commits.items():
        assert re.search(rf"^ok\s+{pack}\s+lock {commit[:7]}\s+{CUSTOM_NODES}/{pack}$", out, re.M), out
    assert "custom nodes: 2 of 2 ok" in out


def test_the_installer_decides_as_on_the_bases_python_when_run_again_in_the_image(images, in_the_image):
    """The same command into a new ComfyUI folder, with no network: it fetches from the base's mirror,
    says whether the Python is externally managed, and finds the requirement already there."""
    out, code = in_the_image["reinstall"]
    assert code == 0, out
    for pack, commit in images.base.pack_commits.items():
        assert f"installing {pack} at {commit[:7]} from {PACKS_MIRROR}/{OWNER}/{pack}.git" in out, out
    managed = "is externally managed (PEP 668): pip runs with --break-system-packages" in out
    assert managed == (images.variant == "externally-managed"), out
    assert "Requirement already satisfied: {}=={}".format(*REQUIREMENT) in out, out
    assert "2 of 2 custom node pack(s) in /tmp/comfy/custom_nodes: 2 installed" in out, out


def test_a_workflow_runs_the_installed_packs_on_their_baked_weight_with_no_network(images, baked_container):
    running = baked_container  # read-only, the test kit preloaded from the image, WEIGHTS_STRICT=true
    assert_packs_loaded(running.logs(), images.base.pack_commits)
    assert set(images.base.pack_commits) == {TINTS, COLOUR_NAMES}
    answer = running.predict({"workflow_json": json.dumps(workflow())}).json()
    assert answer["status"] == "succeeded", answer.get("error") or answer
    assert [data_uri_bytes(uri).decode() for uri in answer["output"]] == [expected_text()]
    # The loader's input was known as a weight of the folder the pack registers, and found baked.
    assert answer["metrics"]["weights_required"] == 1 and answer["metrics"]["weights_fetched"] == 0
    assert running.read(f"/src/weights/{TINT_FOLDER}/{TINT_NAME}")
    REPORT[images.variant]["custom_nodes_prediction_predict_time_s"] = answer["metrics"].get("predict_time")
