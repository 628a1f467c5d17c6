"""comfyrun: running workflows on ComfyUI over HTTP and its websocket, independent of Cog.

`comfyui.ComfyUI` composes these modules; each has one job: `settings` (environment), `process` (the
child process, run under `parent_watch` so it dies with us), `supervisor` (restarts it when it dies),
`http` (the routes), `follow` (the websocket, one prompt to its end), `nodeclasses` (classes ComfyUI
lacks, packs that failed to import), `outputs`, `uploads` (an attached ComfyUI's inputs), `weightfaults`
(which weight file an execution error blames), `weightstore` (what it needs of a store), `repair`,
`errors`.
"""

from comfyrun.errors import (
    ComfyRunError,
    ComfyUIDiedError,
    ComfyUIDownError,
    ComfyUIHTTPError,
    ComfyUIStartError,
    ComfyUIUnavailableError,
    ExecutionError,
    NodeError,
    PromptInterruptedError,
    PromptRejectedError,
    RunTimeoutError,
    UnknownNodeClassError,
    WeightCorruptError,
    WeightMissingError,
)
from comfyrun.outputs import Output
from comfyrun.settings import RuntimeSettings

__all__ = [
    "ComfyRunError",
    "ComfyUIDiedError",
    "ComfyUIDownError",
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
    "UnknownNodeClassError",
    "WeightCorruptError",
    "WeightMissingError",
]
