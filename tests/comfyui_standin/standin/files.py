"""`POST /upload/image` and `GET /view`: the input, output and temp directories, served as ComfyUI does.

An upload goes to `<type dir>/<subfolder>/<name>`; a file of that name with the same content is kept
(the answer names it), one with other content makes the upload `name (1).ext`, `name (2).ext`...
unless `overwrite` is `true`/`1`. `/view` refuses names starting with `/` or holding `..` (400) and
subfolders that leave the directory (403); a missing file is a 404 with an empty body.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from io import BytesIO
from typing import Any

from aiohttp import web
from PIL import Image

from .folders import Folders

_FORCED_DOWNLOAD = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}


def upload_image(post: Any, folders: Folders, hash_name: str) -> web.Response:
    image = post.get("image")
    overwrite = post.get("overwrite")
    upload_type = post.get("type")
    if upload_type is None:
        upload_type = "input"
    upload_dir = folders.directory_by_type(upload_type)
    if upload_dir is None:
        raise ValueError(f"unknown upload type {upload_type!r}")  # ComfyUI fails here too (a 500)
    if not (image and image.file):
        return web.Response(status=400)
    filename = image.filename
    if not filename:
        return web.Response(status=400)
    subfolder = post.get("subfolder", "")
    folder = os.path.join(upload_dir, os.path.normpath(subfolder))
    filepath = os.path.abspath(os.path.join(folder, filename))
    if os.path.commonpath((upload_dir, filepath)) != upload_dir:
        return web.Response(status=400)
    os.makedirs(folder, exist_ok=True)

    content = image.file.read()
    duplicate = False
    if overwrite not in ("true", "1"):
        stem, extension = os.path.splitext(filename)
        counter = 1
        while os.path.exists(filepath):
            if _same_content(filepath, content, hash_name):
                duplicate = True
                break
            filename = f"{stem} ({counter}){extension}"
            filepath = os.path.join(folder, filename)
            counter += 1
    if not duplicate:
        with open(filepath, "wb") as f:
            f.write(content)
    return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})


def _same_content(path: str, content: bytes, hash_name: str) -> bool:
    with open(path, "rb") as f:
        return hashlib.new(hash_name, f.read()).digest() == hashlib.new(hash_name, content).digest()


def view(query: Any, folders: Folders) -> web.StreamResponse:
    if "filename" not in query:
        return web.Response(status=404)
    filename, output_dir = folders.annotated_filepath(query["filename"])
    if not filename:
        return web.Response(status=400)
    if filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    if output_dir is None:
        output_dir = folders.directory_by_type(query.get("type", "output"))
    if output_dir is None:
        return web.Response(status=400)
    if "subfolder" in query:
        full = os.path.join(output_dir, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full), output_dir)) != output_dir:
            return web.Response(status=403)
        output_dir = full
    filename = os.path.basename(filename)
    path = os.path.join(output_dir, filename)
    if not os.path.isfile(path):
        return web.Response(status=404)
    disposition = {"Content-Disposition": f'filename="{filename}"'}
    if "preview" in query:
        return _preview(path, query, disposition)
    channel = query.get("channel", "rgba")
    if channel == "rgb":
        with Image.open(path) as img:
            rgb = Image.merge("RGB", img.split()[:3]) if img.mode == "RGBA" else img.convert("RGB")
            return web.Response(body=_png(rgb), content_type="image/png", headers=disposition)
    if channel == "a":
        with Image.open(path) as img:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
            return web.Response(body=_png(out), content_type="image/png", headers=disposition)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in _FORCED_DOWNLOAD:
        content_type = "application/octet-stream"
    return web.FileResponse(path, headers={**disposition, "Content-Type": content_type})


def _preview(path: str, query: Any, disposition: dict[str, str]) -> web.Response:
    with Image.open(path) as img:
        parts = query["preview"].split(";")
        image_format = parts[0]
        if image_format not in ("webp", "jpeg") or "a" in query.get("channel", ""):
            image_format = "webp"
        quality = int(parts[-1]) if parts[-1].isdigit() else 90
        if image_format == "jpeg" or query.get("channel", "") == "rgb":
            img = img.convert("RGB")
        buffer = BytesIO()
        img.save(buffer, format=image_format, quality=quality)
        return web.Response(body=buffer.getvalue(), content_type=f"image/{image_format}", headers=disposition)


def _png(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
