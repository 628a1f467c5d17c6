"""Run ComfyUI workflows with Cog, where model weights never break a prediction.

`setup()` preloads the weights of `BASE_MODEL_KIT`, `PRELOAD_WORKFLOW` and `PRELOAD_WEIGHTS` while ComfyUI
starts. `predict()` works out which weight files the workflow needs, checks by a stat per file that they
are here, fetches what is missing (or fails at once with `WEIGHTS_STRICT=true`), runs the workflow on
ComfyUI and returns the files it made. The work is done in `prediction/`, `comfyui.py` and `weightkit/`;
every setting is listed in the README.
"""

from __future__ import annotations

import logging

from cog import BasePredictor, Input, Path, current_scope

from prediction.app import App, PredictRequest
from prediction.server_watch import exit_with_parent
from prediction.settings import PredictorSettings
from weightkit.download import FetchSummary


class Predictor(BasePredictor):
    def setup(self, weights: str | None = None) -> None:
        """Start ComfyUI and preload weights side by side; `weights` is Cog's URL of a .tar of model
        folders (as Replicate passes trained weights), unpacked into the weights directory."""
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        exit_with_parent()  # coglet stopped during setup leaves its worker running
        self.app = App(PredictorSettings.from_env())
        self.app.setup(weights)

    def healthcheck(self) -> bool:
        """Cog's user-defined healthcheck (coglet 0.23 calls it on `GET /health-check` after setup, within
        5 s): an exception makes the status `UNHEALTHY`, its message the `user_healthcheck_error`. Raises
        `ComfyUIDownError` once ComfyUI died and could not be started again."""
        self.app.healthcheck()
        return True

    def preload_base_kit(self, kit_name: str) -> FetchSummary:
        """Fetch every weight of a kit (`python -m weightkit kits` lists them)."""
        return self.app.preload_base_kit(kit_name)

    def preload_workflow_weights(self, workflow_json: str) -> FetchSummary:
        """Fetch every weight an API-format workflow needs."""
        return self.app.preload_workflow_weights(workflow_json)

    def predict(
        self,
        workflow_json: str = Input(
            description="Your ComfyUI workflow in API format (in ComfyUI: Workflow > Export (API)), as JSON "
            "text, an http(s) URL of a JSON file, or a data: URI. Empty runs the bundled SD 1.5 example.",
            default="",
        ),
        input_file: Path | None = Input(
            description="An image, video or audio file (placed in ComfyUI's input folder as input.<ext>), "
            "or a .zip/.tar of input files, unpacked there keeping their folders.",
            default=None,
        ),
        return_temp_files: bool = Input(
            description="Also return temporary files, such as preview images and preprocessed "
            "ControlNet inputs. Useful for debugging.",
            default=False,
        ),
        output_format: str = Input(
            description="Format of the returned images (animations, videos and other files are returned as "
            "they are).",
            choices=["webp", "jpg", "png"],
            default="webp",
        ),
        output_quality: int = Input(
            description="Quality of webp and jpg images, from 1 to 100 (png is lossless).",
            ge=1,
            le=100,
            default=95,
        ),
        randomise_seeds: bool = Input(
            description="Give every seed, noise_seed and rand_seed input a new random value.",
            default=True,
        ),
        force_reset_cache: bool = Input(
            description="Unload models and clear ComfyUI's cache of node results before running.",
            default=False,
        ),
    ) -> list[Path]:
        """Run the workflow on ComfyUI and return the files it made."""
        result = self.app.predict(
            PredictRequest(
                workflow_json=workflow_json,
                input_file=input_file,
                return_temp_files=return_temp_files,
                output_format=output_format,
                output_quality=output_quality,
                randomise_seeds=randomise_seeds,
                force_reset_cache=force_reset_cache,
            )
        )
        scope = current_scope()
        for name, value in result.metrics.items():
            scope.record_metric(name, value)
        return [Path(path) for path in result.files]
