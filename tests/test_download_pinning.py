"""Guarded URLs (issue 9 items 15 and 16): a connection goes to an address the guard checked, never to a
fresh DNS answer, with the URL's own Host header and TLS name; and no token goes to a host when the
request says not to send credentials.

Two real servers listen on the same port, at 127.0.0.1 and 127.0.0.2; the URLs name hosts under
`.test`, which DNS never resolves, so only a pinned connection can reach anything.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from tests.downloadkit import fast_settings, payload, sha256, with_token
from tests.faultserver import FaultServer
from weightkit.download import Downloader, FetchRequest
from weightkit.download.connections import Connections
from weightkit.download.httprange import RetryableError, SourceError, open_range
from weightkit.download.rate import RateFloor
from weightkit.download.stream import Stream
from weightkit.errors import DownloadError

CHILD = Path(__file__).resolve().parent / "download_child.py"


@pytest.fixture
def twins():
    """Two servers on one port: 127.0.0.1 and 127.0.0.2."""
    with FaultServer("127.0.0.1") as first, FaultServer("127.0.0.2", first.port) as second:
        yield first, second


def _guard(pins: dict[str, list[str]], asked: list[str]):
    def guard(url: str) -> SimpleNamespace:
        asked.append(url)
        return SimpleNamespace(addresses=tuple(pins[urlsplit(url).hostname or ""].pop(0)))

    return guard


def test_guard_addresses_pin_the_connection_and_the_host_header_stays_the_urls(twins, tmp_path):
    near, far = twins
    data = payload(1 << 20)
    near.serve("/w.bin", data)
    far.serve("/w.bin", payload(1 << 20, seed=1))
    url = f"http://weights.test:{near.port}/w.bin"
    asked: list[str] = []
    guard = _guard({"weights.test": [["127.0.0.1"]] * 10}, asked)
    request = FetchRequest.for_url(url, tmp_path / "loras" / "w.bin", url_guard=guard)
    result = Downloader(fast_settings(chunk_size=1 << 20)).fetch(request)
    assert request.dest.read_bytes() == data and result.sha256 == sha256(data)
    assert [s.headers["Host"] for s in near.seen("/w.bin")] == [f"weights.test:{near.port}"]
    assert far.requests == [] and asked == [url]


def test_kept_alive_connection_is_reused_only_for_the_same_address(twins, tmp_path):
    near, far = twins
    data = payload(3 << 20)
    near.serve("/w.bin", data)
    far.serve("/w.bin", data)
    url = f"http://weights.test:{near.port}/w.bin"
    # the first request is checked to 127.0.0.1; every later one to 127.0.0.2 only
    pins = {"weights.test": [["127.0.0.1"]] + [["127.0.0.2"]] * 10}
    request = FetchRequest.for_url(url, tmp_path / "loras" / "w.bin", url_guard=_guard(pins, []))
    Downloader(fast_settings(chunk_size=1 << 20, connections_per_file=1)).fetch(request)
    assert request.dest.read_bytes() == data
    assert [s.headers["Range"] for s in near.seen("/w.bin")] == ["bytes=0-1048575"]
    assert len(far.seen("/w.bin")) == 2  # a new connection to the address checked, not the old one
    assert all(s.headers["Host"] == f"weights.test:{near.port}" for s in far.requests)


def test_redirect_hop_goes_to_the_address_checked_for_its_own_host(twins, tmp_path):
    near, far = twins
    data = payload(1 << 20)
    near.serve("/resolve/w.bin", b"", redirect=f"http://cdn.test:{far.port}/blob/w.bin")
    far.serve("/blob/w.bin", data)
    asked: list[str] = []
    pins = {"hub.test": [["127.0.0.1"]], "cdn.test": [["127.0.0.2"]] * 10}
    url = f"http://hub.test:{near.port}/resolve/w.bin"
    request = FetchRequest.for_url(url, tmp_path / "loras" / "w.bin", url_guard=_guard(pins, asked))
    Downloader(fast_settings()).fetch(request)
    assert request.dest.read_bytes() == data
    assert near.seen("/resolve/w.bin")[0].headers["Host"] == f"hub.test:{near.port}"
    assert far.seen("/blob/w.bin")[0].headers["Host"] == f"cdn.test:{far.port}"
    assert asked[:2] == [url, f"http://cdn.test:{far.port}/blob/w.bin"]


def test_guard_answering_no_address_refuses_the_source(twins, tmp_path):
    near, _ = twins
    near.serve("/w.bin", payload(1000))
    request = FetchRequest.for_url(
        near.url("/w.bin"), tmp_path / "w.bin", url_guard=lambda url: SimpleNamespace(addresses=())
    )
    with pytest.raises(DownloadError, match="checked no address"):
        Downloader(fast_settings()).fetch(request)
    assert near.requests == []


def test_url_not_declared_as_a_source_gets_no_token_even_on_the_tokens_origin(tmp_path):
    with FaultServer() as server:
        data = payload(1 << 20)
        server.serve("/w.bin", data)
        settings = with_token(fast_settings(), server.origin, "hf_secret")
        request = FetchRequest.for_url(server.url("/w.bin"), tmp_path / "w.bin", send_credentials=False)
        Downloader(settings).fetch(request)
        assert request.dest.read_bytes() == data
        assert server.requests and all("Authorization" not in s.headers for s in server.requests)
        declared = FetchRequest.for_url(server.url("/w.bin"), tmp_path / "declared.bin")
        Downloader(settings).fetch(declared)  # the same URL as a declared source does get it
        assert server.requests[-1].headers.get("Authorization") == "Bearer hf_secret"


# -- TLS: the certificate is checked for the URL's host, at the pinned address --------------------------


def _certificate(folder: Path, host: str) -> tuple[Path, Path]:
    key, cert = folder / f"{host}.key", folder / f"{host}.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    names = ["-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"]
    subprocess.run(
        [*request, *names, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return key, cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificates")
@pytest.mark.parametrize(("certified", "works"), [("weights.test", True), ("other.test", False)])
def test_pinned_https_names_and_checks_the_urls_host(tmp_path, certified, works):
    key, cert = _certificate(tmp_path, certified)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    data = payload(1 << 20)
    with FaultServer(tls=tls) as server:
        server.serve("/w.bin", data)
        spec = {
            "dest": str(tmp_path / "w.bin"),
            "urls": [f"https://weights.test:{server.port}/w.bin"],
            "pin": {"weights.test": ["127.0.0.1"]},
            "settings": {"retries": 0},
        }
        env = {"SSL_CERT_FILE": str(cert), "PATH": "/usr/bin:/bin"}  # trust only the test certificate
        child = subprocess.run(
            [sys.executable, str(CHILD), json.dumps(spec)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert "weights.test" in server.server_names  # the TLS server name is the URL's host
    if works:
        assert child.returncode == 0, child.stderr
        assert json.loads(child.stdout)["sha256"] == sha256(data)
        assert server.seen("/w.bin")[0].headers["Host"] == f"weights.test:{server.port}"
    else:
        assert child.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in child.stderr
        assert server.requests == []


# -- the fetching half as URL inputs will use it: one GET, a byte limit, a deadline ---------------------


def _get(url: str, *, max_bytes: int, seconds: float, guard=None) -> bytes:
    """A whole-body GET built on the downloader's reader, as `prediction/` can build one."""
    with Connections(timeout=5.0) as conns:
        reply = open_range(conns, url, 0, None, credentials=(), guard=guard)
        floor = RateFloor(bytes_per_second=10_000, window=1.0)
        with Stream(reply, conns, floor=floor, deadline=time.monotonic() + seconds) as stream:
            body = bytearray()
            while piece := stream.read(64 << 10):
                body += piece
                if len(body) > max_bytes:
                    raise ValueError(f"more than {max_bytes} bytes")
            return bytes(body)


def test_whole_body_get_with_a_limit_and_a_deadline_builds_on_the_reader(twins):
    near, _ = twins
    data = payload(300_000)
    near.serve("/input.png", data)
    near.serve("/slow.png", data, rate=50_000)
    pins = {"inputs.test": [["127.0.0.1"]] * 10}
    assert (
        _get(
            f"http://inputs.test:{near.port}/input.png", max_bytes=1 << 20, seconds=5, guard=_guard(pins, [])
        )
        == data
    )
    with pytest.raises(ValueError, match="more than 100000 bytes"):
        _get(near.url("/input.png"), max_bytes=100_000, seconds=5)
    with pytest.raises(SourceError, match="deadline"):
        _get(near.url("/slow.png"), max_bytes=1 << 20, seconds=0.5)
    near.inject("/input.png", "short", by=1000)
    with pytest.raises(RetryableError, match="1000 bytes of the body to come"):
        _get(near.url("/input.png"), max_bytes=1 << 20, seconds=5)
