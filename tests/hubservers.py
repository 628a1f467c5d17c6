"""A stand-in Hugging Face on 127.0.0.1 and its CDN on 127.0.0.2, both fault servers.

`hub.publish("org/repo", "x.safetensors", data)` makes the resolve URL answer as Hugging Face's does
for an LFS file: a 302 to the CDN carrying `X-Linked-Size`, `X-Linked-Etag` (the sha256, quoted) and
`X-Repo-Commit`, to GET and HEAD alike; the CDN serves the bytes at a path named by their sha256.
Named misbehaviours of the linked headers (`linked=`):

- `right`: what Hugging Face states;
- `wrong-sha256`: a sha256 the bytes do not have;
- `wrong-size`: a size one byte short;
- `missing`: no linked headers at all (as for a file not kept in LFS);
- `git-etag`: an `X-Linked-Etag` that is a git sha1, not a sha256.

`hub.card("org/repo", license=..., gated=...)` serves the model API's answer (`/api/models/<repo>`),
with `cardData.license` and `gated`. Point the downloader at the stand-in with `hf_endpoint=hub.endpoint`
(or `WEIGHTS_HF_ENDPOINT`); the public URL to put in a manifest is `hub.url(repo, file)`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.faultserver import FaultServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    hf: FaultServer
    cdn: FaultServer

    @property
    def endpoint(self) -> str:
        return self.hf.origin

    @staticmethod
    def url(repo: str, file: str, revision: str = "main") -> str:
        """The public resolve URL of a published file, as a manifest holds it."""
        return f"https://huggingface.co/{repo}/resolve/{revision}/{file}"

    @staticmethod
    def resolve_path(repo: str, file: str, revision: str = "main") -> str:
        return f"/{repo}/resolve/{revision}/{file}"

    def publish(
        self,
        repo: str,
        file: str,
        data: bytes,
        *,
        linked: str = "right",
        token: str | None = None,
        revision: str = "main",
    ) -> str:
        """Serve `data` as `repo`'s `file`; returns the CDN path the bytes are served at."""
        sha256 = hashlib.sha256(data).hexdigest()
        cdn_path = f"/repos/{sha256[:2]}/{sha256}"
        self.cdn.serve(cdn_path, data, etag=f'"{sha256}"')
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{sha256}"'}
        if linked != "missing":
            size = len(data) - (1 if linked == "wrong-size" else 0)
            etag = {
                "right": sha256,
                "wrong-sha256": hashlib.sha256(data + b"!").hexdigest(),
                "wrong-size": sha256,
                "git-etag": hashlib.sha1(data).hexdigest(),
            }[linked]
            headers |= {"X-Linked-Size": str(size), "X-Linked-Etag": f'"{etag}"'}
        self.hf.serve(
            self.resolve_path(repo, file, revision),
            b"",
            redirect=self.cdn.url(cdn_path),
            headers=headers,
            require_token=token,
        )
        return cdn_path

    def card(self, repo: str, *, license: str | None = "mit", gated: bool | str = False) -> None:
        card = {"license": license} if license else {}
        body = {
            "id": repo,
            "gated": gated,
            "cardData": card,
            "tags": [f"license:{license}"] if license else [],
        }
        self.hf.serve(f"/api/models/{repo}", json.dumps(body).encode())

    def head_requests(self) -> list[str]:
        return [seen.path for seen in self.hf.requests if seen.method == "HEAD"]

    def cdn_gets(self) -> list[str]:
        return [seen.path for seen in self.cdn.requests if seen.method == "GET"]


@contextmanager
def hub() -> Iterator[Hub]:
    with FaultServer() as hf, FaultServer(host="127.0.0.2") as cdn:
        yield Hub(hf, cdn)
