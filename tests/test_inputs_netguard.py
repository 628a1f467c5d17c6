"""netguard: which URLs may be fetched, shown against real servers on loopback addresses."""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from prediction.input_errors import InputDownloadError, URLRefusedError
from prediction.netguard import check_url
from prediction.settings import InputSettings
from prediction.special_addresses import _REGISTRY, address_problem
from prediction.url_download import fetch_bytes
from tests.inputs_http import LocalServer, Route
from weightkit.download.connections import _tls_context

DEFAULT = InputSettings(download_timeout=5)
# 127.0.0.1 (and ::1, for a `localhost` that resolves to both), but not the rest of 127.0.0.0/8.
LOOPBACK_ALLOWED = InputSettings(
    download_timeout=5,
    allowed_networks=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
)


def get(url: str, settings: InputSettings):
    """A URL input fetched as predictions fetch them."""
    return fetch_bytes(url, settings=settings, max_bytes=1 << 20, limit_setting="INPUT_DOWNLOAD_MAX_BYTES")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "documentation"),
        ("168.63.129.16", "metadata"),  # Azure's host endpoint, in a public range
        ("192.0.0.9", "IETF protocol"),  # "globally reachable" anycast: still not a weights host
        ("192.0.0.192", "metadata"),  # Oracle Cloud
        ("::a00:1", "private"),  # IPv4-compatible ::10.0.0.1
        ("64:ff9b:1::1", "local-use"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("4000::1", "unassigned"),
    ],
)
def test_address_problem_special_address_is_named(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("network", "reason"), [(str(network), reason) for network, reason in _REGISTRY], ids=str
)
def test_every_iana_special_purpose_range_is_refused_at_both_ends(network: str, reason: str) -> None:
    net = ipaddress.ip_network(network)
    for address in (net.network_address, net.broadcast_address):
        problem = address_problem(address)
        assert problem is not None, address


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "192.0.3.1", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::"]
)
def test_address_problem_public_address_is_none(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "127.1"],  # the last three resolve to 127.0.0.1
)
def test_loopback_refused_before_any_request(host: str) -> None:
    with LocalServer() as server:
        server.routes["/x"] = Route(b"secret")
        with pytest.raises(URLRefusedError) as caught:
            get(server.url("/x", host=host), DEFAULT)
        assert server.requests == []
    assert ipaddress.ip_address(caught.value.address).is_loopback
    assert "loopback" in str(caught.value) and "ALLOW_PRIVATE_URLS" in str(caught.value)


def test_ipv6_loopback_refused_before_any_request() -> None:
    with LocalServer("::1") as server:
        server.routes["/x"] = Route(b"secret")
        with pytest.raises(URLRefusedError) as caught:
            get(server.url("/x"), DEFAULT)
        assert server.requests == []
    assert caught.value.address == "::1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/workflow.json", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("http://user:secret@example.com/x", "user name or password"),
        ("http:///x", "no host"),
        ("http://example.com:99999/x", "not a valid URL"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(URLRefusedError, match=reason) as caught:
        check_url(url, settings=DEFAULT)
    assert caught.value.url == url


def test_allowed_network_lets_loopback_through_and_keeps_host_header() -> None:
    settings = InputSettings(download_timeout=5, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    with LocalServer() as server:
        server.routes["/x"] = Route(b"hello")
        fetched = fetch_bytes(
            server.url("/x", host="localhost"), settings=settings, max_bytes=100, limit_setting="L"
        )
    assert fetched.data == b"hello"
    assert server.requests[0].headers["Host"] == f"localhost:{server.port}"


def test_allow_everything_setting_lets_loopback_through() -> None:
    with LocalServer() as server:
        server.routes["/x"] = Route(b"hello")
        fetched = fetch_bytes(
            server.url("/x"),
            settings=InputSettings(allow_private_urls=True),
            max_bytes=100,
            limit_setting="L",
        )
    assert fetched.data == b"hello"


def test_allowed_network_that_does_not_cover_the_address_still_refuses() -> None:
    settings = InputSettings(allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    with LocalServer() as server, pytest.raises(URLRefusedError):
        get(server.url("/x"), settings)
    assert server.requests == []


def test_redirect_from_allowed_to_refused_address_is_refused() -> None:
    with LocalServer("127.0.0.2") as inner, LocalServer() as outer:
        inner.routes["/secret"] = Route(b"secret")
        outer.routes["/go"] = Route(status=302, headers={"Location": inner.url("/secret")})
        with pytest.raises(URLRefusedError) as caught:
            get(outer.url("/go"), LOOPBACK_ALLOWED)
        assert [r.path for r in outer.requests] == ["/go"]
        assert inner.requests == []
    assert caught.value.address == "127.0.0.2"
    assert caught.value.url == inner.url("/secret") and f"{outer.url('/go')} redirected there" in str(
        caught.value
    )


def test_redirect_to_metadata_address_is_refused() -> None:
    with LocalServer() as server:
        server.routes["/go"] = Route(status=307, headers={"Location": "http://169.254.169.254/latest/"})
        with pytest.raises(URLRefusedError, match="metadata"):
            get(server.url("/go"), LOOPBACK_ALLOWED)


def test_relative_redirect_within_allowed_host_is_followed() -> None:
    with LocalServer() as server:
        server.routes["/a"] = Route(status=301, headers={"Location": "/b?x=1"})
        server.routes["/b"] = Route(b"there")
        fetched = get(server.url("/a"), LOOPBACK_ALLOWED)
        assert fetched.data == b"there" and fetched.url == server.url("/b?x=1")


def test_redirect_loop_stops() -> None:
    with LocalServer() as server:
        server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
        with pytest.raises(InputDownloadError, match="more than 10 redirects"):
            get(server.url("/loop"), LOOPBACK_ALLOWED)
        assert len(server.requests) == 11


def test_unresolvable_host_is_a_download_error() -> None:
    with pytest.raises(InputDownloadError, match="could not be resolved"):
        check_url("http://no-such-host.invalid/x", settings=DEFAULT)


def test_closed_port_is_a_download_error() -> None:
    with LocalServer() as server:
        url = server.url("/x")
    with pytest.raises(InputDownloadError, match="connection failed"):
        get(url, LOOPBACK_ALLOWED)


@pytest.fixture(autouse=True)
def fresh_trust_store():
    """The downloader reads the trust store once per process; these tests change it."""
    _tls_context.cache_clear()
    yield
    _tls_context.cache_clear()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def _tls_server(cert: Path, key: Path) -> LocalServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return LocalServer(tls=context)


def test_https_to_checked_address_verifies_certificate_for_url_host(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate, as a deployment would its CA
    with _tls_server(cert, key) as server:
        server.routes["/x"] = Route(b"over tls")
        assert get(server.url("/x", host="localhost"), LOOPBACK_ALLOWED).data == b"over tls"


def test_https_certificate_for_another_name_is_refused(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with _tls_server(cert, key) as server:
        with pytest.raises(InputDownloadError, match="certificate verify failed"):
            get(server.url("/x"), LOOPBACK_ALLOWED)  # 127.0.0.1: not in the certificate
        assert server.requests == []


def test_https_untrusted_certificate_is_refused(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    with _tls_server(cert, key) as server:
        with pytest.raises(InputDownloadError, match="certificate verify failed"):
            get(server.url("/x", host="localhost"), LOOPBACK_ALLOWED)
        assert server.requests == []


DOCUMENTED_NETWORKS = InputSettings.from_env({"ALLOW_PRIVATE_URLS": "10.1.0.0/16,fd00::/8,100.64.0.0/10"})


@pytest.mark.parametrize(
    "address",
    ["fd00:ec2::254", "100.100.100.200", "169.254.169.254", "168.63.129.16", "::ffff:169.254.169.254"],
)
@pytest.mark.parametrize("networks", ["10.1.0.0/16,fd00::/8,100.64.0.0/10", "0.0.0.0/0,::/0"])
def test_allowed_networks_that_contain_a_metadata_address_still_refuse_it(address: str, networks: str):
    settings = InputSettings.from_env({"ALLOW_PRIVATE_URLS": networks})
    with pytest.raises(URLRefusedError, match="metadata") as caught:
        check_url("http://metadata.test/latest/", settings=settings, resolve=lambda host, port: [address])
    assert caught.value.kind == "metadata" and "never opens them" in str(caught.value)


def test_allowed_networks_open_their_other_addresses() -> None:
    checked = check_url(
        "http://nas.test/x", settings=DOCUMENTED_NETWORKS, resolve=lambda host, port: ["fd00:ec2::253"]
    )
    assert checked.addresses == ("fd00:ec2::253",)


def test_allow_everything_opens_a_metadata_address() -> None:
    settings = InputSettings.from_env({"ALLOW_PRIVATE_URLS": "true"})
    checked = check_url("http://[fd00:ec2::254]/latest/", settings=settings, resolve=lambda h, p: [h])
    assert checked.addresses == ("fd00:ec2::254",)


@pytest.mark.parametrize(
    "url", ["http://[::1", "https://[example.com]/a.png", "http://user:pw@[::1/x?token=secret"]
)
def test_unsplittable_url_is_refused_with_the_paragraph(url: str) -> None:
    with pytest.raises(URLRefusedError, match="not a valid URL") as caught:
        get(url, DEFAULT)
    assert caught.value.kind == "form" and "secret" not in str(caught.value) and "pw" not in str(caught.value)


def test_redirect_to_an_unsplittable_url_is_a_download_error() -> None:
    with LocalServer() as server:
        server.routes["/go"] = Route(status=302, headers={"Location": "http://[::1/x"})
        with pytest.raises((InputDownloadError, URLRefusedError), match=r"http://127\.0\.0\.1"):
            get(server.url("/go"), LOOPBACK_ALLOWED)


@pytest.mark.parametrize(
    "url",
    ["http://example.com:99999/x", "http:///x", "http://user:secret@example.com/x", "ftp://example.com/x"],
)
def test_refusal_of_a_malformed_url_does_not_advise_allowing_networks(url: str) -> None:
    with pytest.raises(URLRefusedError) as caught:
        check_url(url, settings=DEFAULT)
    assert "ALLOW_PRIVATE_URLS" not in str(caught.value) and "Give a full http" in str(caught.value)


def test_refusal_of_a_private_address_advises_allowing_networks() -> None:
    with pytest.raises(URLRefusedError) as caught:
        check_url("http://10.0.0.1/x", settings=DEFAULT)
    assert caught.value.kind == "address" and "ALLOW_PRIVATE_URLS" in str(caught.value)
