"""comfyrun: running workflows on ComfyUI over HTTP and its websocket, independent of Cog.

`comfyui.ComfyUI` composes these modules; each has one job: `settings` (environment), `process` (the
child process), `http` (the routes), `follow` (the websocket, one prompt to its end), `outputs`,
`weightfaults` (which weight file an execution error blames), `errors`.
"""

from comfyrun.errors import (
    ComfyRunError,
    ComfyUIDiedError,
    ComfyUIHTTPError,
    ComfyUIStartError,
    ComfyUIUnavailableError,
    ExecutionError,
    NodeError,
    PromptInterruptedError,
    PromptRejectedError,
    RunTimeoutError,
    WeightCorruptError,
    WeightMissingError,
)
from comfyrun.outputs import Output
from comfyrun.settings import RuntimeSettings

__all__ = [
    "ComfyRunError",
    "ComfyUIDiedError",
    "ComfyUIHTTPError",
    "ComfyUIStartError",
    "ComfyUIUnavailableError",
    "ExecutionError",
    "NodeError",
    "Output",
    "PromptInterruptedError",
    "PromptRejectedError",
    "RunTimeoutError",
    "RuntimeSettings",
    "WeightCorruptError",
    "WeightMissingError",
]
