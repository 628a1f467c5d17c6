"""The README is true: its settings table is the one the code documents, its commands exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import settings_table  # noqa: E402


def test_settings_table_is_generated_from_the_settings_classes():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table.rewrite(readme) == readme, "run: python scripts/settings_table.py --write"


def test_every_variable_the_code_reads_is_in_the_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    read = set()
    packages = ("weightkit/**/*.py", "nodekit/*.py", "comfyrun/*.py", "prediction/*.py")
    for path in [path for pattern in packages for path in ROOT.glob(pattern)]:
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", text))
        read |= set(
            re.findall(
                r"""(?:raw|text|optional_text|verbatim|count|seconds|seconds_or_no_limit|size|flag|items|path|optional_path|port)\(\s*(?:env,\s*)?["']([A-Z][A-Z0-9_]+)["']""",
                text,
            )
        )
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", readme, flags=re.M))
    assert read and read <= documented | {"HUGGING_FACE_HUB_TOKEN"}, sorted(read - documented)


def test_the_readme_commands_name_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in ("examples/sd15_txt2img.json", "scripts/predict_local.py", "scripts/install_comfyui.sh"):
        assert path in readme and (ROOT / path).exists()
    assert "make test" in readme and "make test" in (ROOT / ".ci" / "run").read_text()
