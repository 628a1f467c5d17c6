"""Against a real nginx: range requests over kept-alive connections, verified and renamed."""

from __future__ import annotations

import pytest

from tests.downloadkit import fast_settings, leftovers, payload, sha256
from tests.nginxserver import Nginx, nginx_binary
from weightkit.download import Downloader, FetchRequest

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (.ci/run installs it)")


def test_download_from_nginx_uses_ranges_on_kept_alive_connections(tmp_path):
    data = payload(8 << 20)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "w.bin").write_bytes(data)
    with Nginx(tmp_path / "www", tmp_path / "nginx") as nginx:
        urls = (nginx.url("/w.bin"),)
        request = FetchRequest(
            dest=tmp_path / "weights" / "w.bin", urls=urls, size=len(data), sha256=sha256(data)
        )
        result = Downloader(fast_settings(chunk_size=1 << 20, connections_per_file=4)).fetch(request)
    assert request.dest.read_bytes() == data and result.fetched == len(data)
    log = [line.split() for line in nginx.access_log()]  # status, "range", body bytes, connection
    assert len(log) == 8 and all(status == "206" for status, *_ in log)
    assert sum(int(sent) for _, _, sent, _ in log) == len(data)
    assert len({connection for *_, connection in log}) <= 4
    assert leftovers(tmp_path) == []
