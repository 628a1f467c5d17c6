"""Open a weights file the way ComfyUI's `comfy.utils.load_torch_file` does, and fail the way it fails.

The stand-in never loads tensors: it reads what ComfyUI's loaders would have to read to get a state
dict (a .safetensors header, a torch zip's central directory and pickle) and checks it with the same
rules as the safetensors and torch readers, raising the same exception types with the same messages:

- a .safetensors cut short: SafetensorError "Error while deserializing header: incomplete metadata, file
  not fully covered"
- a .safetensors with a huge header length: SafetensorError "Error while deserializing header: header too
  large"
- a torch zip cut short: RuntimeError "PytorchStreamReader failed reading zip archive: failed finding
  central directory..."

The result maps each tensor name to its shape and dtype, which is what the upscaler detection needs.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .errors import SafetensorError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
MAX_HEADER_SIZE = 100_000_000

# safetensors dtype -> bits per element (safetensors 0.6)
_SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

# torch legacy storage class -> (dtype, bytes per element)
_TORCH_STORAGES = {
    "FloatStorage": ("float32", 4),
    "DoubleStorage": ("float64", 8),
    "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2),
    "LongStorage": ("int64", 8),
    "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2),
    "CharStorage": ("int8", 1),
    "ByteStorage": ("uint8", 1),
    "BoolStorage": ("bool", 1),
}

_MINIZ_HINT = (
    ". This is an internal miniz error. If you are seeing this error, there is a high likelihood that your "
    "checkpoint file is corrupted. This can happen if the checkpoint was not saved properly, was transferred "
    "incorrectly, or the file was modified after saving."
)
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str


StateDict = dict[str, TensorSpec]


def load_state_dict(path: str) -> StateDict:
    """Tensor names, shapes and dtypes of a weights file; raises what ComfyUI's loader would raise."""
    if path.lower().endswith(SAFETENSORS_SUFFIXES):
        return read_safetensors(path)
    state = read_torch_file(path)
    if "state_dict" in state:
        state = state["state_dict"]
    elif len(state) == 1:
        (only,) = state.values()
        if isinstance(only, dict):
            state = only
    return {k: v for k, v in state.items() if isinstance(v, TensorSpec)}


# -- safetensors ------------------------------------------------------------------------------------


def read_safetensors_header(path: str) -> tuple[int, dict[str, Any]]:
    """The header length and JSON of a .safetensors file after safetensors' own checks."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _header_error("header too small")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_SIZE:
                raise _header_error("header too large")
            if 8 + n > size:
                raise _header_error("invalid header length")
            raw = f.read(n)
    except OSError as e:
        raise FileNotFoundError(f"No such file or directory: {path}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data":
            raise _header_error(
                f"invalid UTF-8 in header: incomplete utf-8 byte sequence from index {e.start}"
            ) from e
        raise _header_error(
            f"invalid UTF-8 in header: invalid utf-8 sequence of {e.end - e.start} bytes from index {e.start}"
        ) from e
    try:
        header = json.loads(text)
    except json.JSONDecodeError as e:
        raise _header_error(f"invalid JSON in header: {_serde_style(e)}") from e
    return n, _checked_header(header, text, size - 8 - n)


def read_safetensors(path: str) -> StateDict:
    _, header = read_safetensors_header(path)
    return {
        name: TensorSpec(tuple(info["shape"]), info["dtype"])
        for name, info in header.items()
        if name != "__metadata__"
    }


def _header_error(message: str) -> SafetensorError:
    return SafetensorError(f"Error while deserializing header: {message}")


def _serde_style(e: json.JSONDecodeError) -> str:
    what = e.msg[0].lower() + e.msg[1:]
    if what.startswith("extra data"):
        what = "trailing characters"
    return f"{what} at line {e.lineno} column {e.colno}"


def _checked_header(header: Any, text: str, data_len: int) -> dict[str, Any]:
    """safetensors' Metadata rules: typed entries, contiguous offsets, sizes that match, file covered."""
    where = f"at line 1 column {len(text)}"

    def invalid(problem: str) -> SafetensorError:
        return _header_error(f"invalid JSON in header: {problem} {where}")

    if not isinstance(header, dict):
        raise invalid(f"invalid type: {type(header).__name__}, expected a map")
    metadata = header.get("__metadata__")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise invalid("invalid type: expected a map of strings for `__metadata__`")
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise invalid("invalid type: expected struct TensorInfo")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                raise invalid(f"missing field `{key}`")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _SAFETENSORS_DTYPE_BITS:
            raise invalid(f"unknown variant `{dtype}`, expected one of {', '.join(_SAFETENSORS_DTYPE_BITS)}")
        if not (isinstance(shape, list) and all(_is_usize(d) for d in shape)):
            raise invalid("invalid type: expected a sequence of usize for `shape`")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_usize(o) for o in offsets)):
            raise invalid("invalid type: expected a tuple of size 2 for `data_offsets`")
        tensors.append((name, dtype, shape, offsets))
    tensors.sort(key=lambda t: (t[3][0], t[3][1]))
    end = 0
    for name, dtype, shape, (start, stop) in tensors:
        if start != end or stop < start:
            raise _header_error(f"invalid offset for tensor `{name}`")
        end = stop
        elements = 1
        for d in shape:
            elements *= d
        bits = elements * _SAFETENSORS_DTYPE_BITS[dtype]
        if bits >= 2**64:
            raise _header_error("overflow computing buffer size from shape and/or element type")
        if bits % 8:
            raise _header_error(
                "The slice is slicing for subbytes dtypes, and the slice does not end up at a byte boundary, "
                "this is invalid."
            )
        if stop - start != bits // 8:
            raise _header_error("invalid shape, data type, or offset for tensor")
    if end != data_len:
        raise _header_error("incomplete metadata, file not fully covered")
    return header


def _is_usize(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


# -- torch (.pt, .pth, .ckpt, .bin ...) ------------------------------------------------------------


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str
    itemsize: int
    numel: int


@dataclass(frozen=True)
class _StorageType:
    dtype: str
    itemsize: int


class _Opaque:
    """Stands for the harmless objects ComfyUI allows in checkpoints (numpy scalars, Lightning callbacks)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], *rest: Any) -> TensorSpec:
    return TensorSpec(tuple(size), storage.dtype)


def _rebuild_parameter(data: TensorSpec, *rest: Any) -> TensorSpec:
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding),
    ("numpy.core.multiarray", "scalar"): _Opaque,
    ("numpy", "dtype"): _Opaque,
    ("numpy.dtypes", "Float64DType"): _Opaque,
    ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"): _Opaque,
    **{("torch", name): _StorageType(dtype, size) for name, (dtype, size) in _TORCH_STORAGES.items()},
}


class _WeightsOnlyUnpickler(pickle.Unpickler):
    """torch.load(weights_only=True): only tensors, containers and a short list of safe globals."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                "Weights only load failed. In PyTorch 2.6, we changed the default value of the "
                "`weights_only` argument in `torch.load` from `False` to `True`. Unsupported global: "
                f"GLOBAL {module}.{name} was not an allowed global by default."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"Weights only load failed. Unsupported persistent id: {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(
                f"Weights only load failed. Unsupported storage type: {storage_type!r}"
            )
        return _Storage(str(key), storage_type.dtype, storage_type.itemsize, int(numel))


def read_torch_file(path: str) -> dict[str, Any]:
    """The unpickled top-level object of a torch file, tensors replaced by their TensorSpec."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":
        return _read_torch_zip(path)
    return _read_torch_legacy(path)


def _read_torch_zip(path: str) -> dict[str, Any]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise RuntimeError(
            f"PytorchStreamReader failed reading zip archive: failed finding central directory{_MINIZ_HINT}"
        ) from e
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise RuntimeError("PytorchStreamReader failed locating file data.pkl: file not found")
        prefix = pickles[0][: -len("data.pkl")]
        storages: list[_Storage] = []

        class Unpickler(_WeightsOnlyUnpickler):
            def persistent_load(self, pid: Any) -> _Storage:
                storage = super().persistent_load(pid)
                storages.append(storage)
                return storage

        try:
            state = Unpickler(archive.open(pickles[0])).load()
        except zipfile.BadZipFile as e:
            raise RuntimeError(f"PytorchStreamReader failed reading file data.pkl: {e}") from e
        infos = {info.filename: info for info in archive.infolist()}
        for storage in storages:
            record = f"data/{storage.key}"
            info = infos.get(prefix + record)
            if info is None:
                raise RuntimeError(f"PytorchStreamReader failed locating file {record}: file not found")
            if info.file_size < storage.numel * storage.itemsize:
                raise RuntimeError(f"PytorchStreamReader failed reading file {record}: file read failed")
            try:
                with archive.open(info) as member:
                    member.read(1)
            except (zipfile.BadZipFile, OSError) as e:
                raise RuntimeError(
                    f"PytorchStreamReader failed reading file {record}: "
                    "invalid header or archive is corrupted"
                ) from e
    return _as_dict(state)


def _read_torch_legacy(path: str) -> dict[str, Any]:
    """The pre-1.6 format: a pickled magic number, protocol, system info, then the object."""
    with open(path, "rb") as f:
        if not f.read(1):
            raise EOFError("Ran out of input")
        f.seek(0)
        try:
            magic = _WeightsOnlyUnpickler(f).load()
            if magic != _TORCH_LEGACY_MAGIC:
                raise RuntimeError("Invalid magic number; corrupt file?")
            _WeightsOnlyUnpickler(f).load()  # protocol version
            _WeightsOnlyUnpickler(f).load()  # system info
            state = _WeightsOnlyUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, RuntimeError):
            raise
        except Exception as e:
            raise pickle.UnpicklingError(f"Weights only load failed. {e}") from e
    return _as_dict(state)


def _as_dict(state: Any) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise RuntimeError(f"the checkpoint holds a {type(state).__name__}, not a state dict")
    return dict(state)
