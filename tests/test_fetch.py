"""Thumbnail fetching against a real HTTP server on 127.0.0.1: every failure is an entry's error."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
from PIL import Image

from outlyne.search import fetch
from outlyne.search.fetch import FetchLimits, decode_image, fetch_images, is_public_address
from outlyne_dev.search_bench import ImageServer, Route, encode_image

RED_PNG = encode_image(Image.new("RGB", (40, 30), (255, 0, 0)), "PNG")
BLUE_JPEG = encode_image(Image.new("RGB", (40, 30), (0, 0, 255)), "JPEG")
TRANSPARENT_PNG = encode_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "PNG")
# 36 megapixels of one colour compress to a few kB: a decompression bomb in miniature.
BOMB_PNG = encode_image(Image.new("1", (6000, 6000)), "PNG")

ROUTES = {
    "/red.png": Route(RED_PNG),
    "/blue.jpg": Route(BLUE_JPEG, content_type="image/jpeg; charset=binary"),
    "/clear.png": Route(TRANSPARENT_PNG),
    "/slow.png": Route(RED_PNG, delay=1.5),
    "/big.png": Route(RED_PNG + b"\0" * 20_000),
    "/big-stream.png": Route(RED_PNG + b"\0" * 20_000, send_length=False),
    "/page.html": Route(b"<html>hello</html>", content_type="text/html"),
    "/untyped": Route(RED_PNG, content_type=None),
    "/liar.png": Route(b"this is text, not a png" * 10),
    "/bomb.png": Route(BOMB_PNG),
    "/to-red": Route(status=302, headers=(("Location", "/red.png"),)),
    "/to-private": Route(status=302, headers=(("Location", "http://10.0.0.1/x.png"),)),
    "/to-metadata": Route(status=301, headers=(("Location", "http://169.254.169.254/latest/meta-data"),)),
    "/loop": Route(status=302, headers=(("Location", "/loop"),)),
    "/gone.png": Route(b"", status=410),
}

LOOPBACK_OK = FetchLimits(timeout=0.5, deadline=10, max_bytes=10_000, allow_loopback=True)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    assert len(BOMB_PNG) < LOOPBACK_OK.max_bytes  # the bomb must get past the byte cap to test the guard
    with ImageServer(ROUTES) as running:
        yield running


def fetch_one(server: ImageServer, path: str, limits: FetchLimits = LOOPBACK_OK):
    (fetched,) = fetch_images([server.url(path)], limits)
    return fetched


def test_good_images_are_decoded_in_order(server: ImageServer) -> None:
    urls = [server.url("/blue.jpg"), server.url("/missing"), server.url("/red.png")]
    blue, missing, red = fetch_images(urls, LOOPBACK_OK)
    assert [f.url for f in (blue, missing, red)] == urls
    assert red.error is None and red.image.mode == "RGB" and red.image.size == (40, 30)
    assert red.image.getpixel((5, 5)) == (255, 0, 0)
    r, g, b = blue.image.getpixel((5, 5))
    assert b > 200 and r < 50 and g < 50
    assert (missing.image, missing.error) == (None, "404")


def test_transparency_is_flattened_onto_white(server: ImageServer) -> None:
    assert fetch_one(server, "/clear.png").image.getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/slow.png", "timeout"),
        ("/gone.png", "410"),
        ("/big.png", "too large"),  # refused on Content-Length
        ("/big-stream.png", "too large"),  # no Content-Length: cut off while streaming
        ("/page.html", "not an image"),
        ("/untyped", "not an image"),
        ("/liar.png", "not an image"),  # says image/png, is text
        ("/bomb.png", "too large"),
        ("/to-private", "private address"),
        ("/to-metadata", "private address"),
        ("/loop", "too many redirects"),
    ],
)
def test_failures_become_the_entry_error(server: ImageServer, path: str, error: str) -> None:
    fetched = fetch_one(server, path)
    assert (fetched.image, fetched.error) == (None, error)


def test_a_name_that_resolves_to_loopback_is_refused() -> None:
    (fetched,) = fetch_images(["http://localhost:1/x.png"])
    assert fetched.error == "private address"


def test_redirects_are_followed_when_every_hop_is_allowed(server: ImageServer) -> None:
    fetched = fetch_one(server, "/to-red")
    assert fetched.error is None and fetched.image.getpixel((1, 1)) == (255, 0, 0)
    # the connection went to the vetted IP, with the URL's own host in the Host header
    assert ("/red.png", f"127.0.0.1:{server.port}") in server.requests


def test_default_limits_refuse_loopback_before_connecting(server: ImageServer) -> None:
    before = len(server.requests)
    fetched = fetch_one(server, "/red.png", FetchLimits())
    assert (fetched.image, fetched.error) == (None, "private address")
    assert len(server.requests) == before


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.png", "file:///etc/passwd", "not a url", "http://"])
def test_only_http_urls_are_fetched(url: str) -> None:
    (fetched,) = fetch_images([url], LOOPBACK_OK)
    assert fetched.error == "bad url"


def test_the_overall_deadline_bounds_the_batch(server: ImageServer) -> None:
    # The held route answers only when the test says so (or after 30 s): the per-request timeout is longer
    # still, so only the batch deadline can end the fetch before the server has answered.
    release = threading.Event()
    server.routes["/held.png"] = Route(RED_PNG, hold=release)
    limits = FetchLimits(timeout=60, deadline=0.4, allow_loopback=True, concurrency=2)
    try:
        results = fetch_images([server.url("/held.png")] * 3, limits)
        assert "/held.png" not in server.answered  # returned while the server was still holding
    finally:
        release.set()
    assert [r.error for r in results] == ["timeout"] * 3


def test_empty_input() -> None:
    assert fetch_images([]) == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("169.254.169.254", False),
        ("fe80::1%eth0", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("240.0.0.1", False),
    ],
)
def test_address_policy(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_loopback_is_allowed_only_when_asked() -> None:
    assert is_public_address("127.0.0.1", allow_loopback=True)
    assert is_public_address("::ffff:127.0.0.1", allow_loopback=True)
    assert not is_public_address("10.0.0.1", allow_loopback=True)


def test_decode_image_keeps_the_bomb_guard() -> None:
    from outlyne.search.fetch import FetchError

    with pytest.raises(FetchError, match="too large"):
        decode_image(BOMB_PNG)
    assert decode_image(RED_PNG).size == (40, 30)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ImageServer, ssl.SSLContext]]:
    """HTTPS on 127.0.0.1 with a self-signed certificate for the name "localhost" only."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with ImageServer({"/red.png": Route(RED_PNG)}, tls=server_context) as running:
        yield running, client_context


def test_https_to_a_pinned_address_still_verifies_the_name(
    tls_server: tuple[ImageServer, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, trusted = tls_server
    monkeypatch.setattr(fetch, "_tls_context", lambda: trusted)
    # "localhost": resolved and checked here, connected by address, certificate checked for the name
    (fetched,) = fetch_images([server.url("/red.png", host="localhost")], LOOPBACK_OK)
    assert fetched.error is None and fetched.image.getpixel((0, 0)) == (255, 0, 0)
    assert ("/red.png", f"localhost:{server.port}") in server.requests
    # the same server by address: the certificate does not name 127.0.0.1, so verification fails
    (by_address,) = fetch_images([server.url("/red.png")], LOOPBACK_OK)
    assert by_address.error == "connection failed"
    # and the default trust store does not know this self-signed certificate
    monkeypatch.undo()
    (untrusted,) = fetch_images([server.url("/red.png", host="localhost")], LOOPBACK_OK)
    assert untrusted.error == "connection failed"


def test_the_next_vetted_address_is_tried_when_one_refuses(
    server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "dual.test" resolves to 127.0.0.2 (nothing listens there) and then to the server's 127.0.0.1
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host != "dual.test":  # the connection itself resolves the address literal
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("127.0.0.2", "127.0.0.1")]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", resolver)
    (fetched,) = fetch_images([server.url("/red.png", host="dual.test")], LOOPBACK_OK)
    assert fetched.error is None
    assert ("/red.png", f"dual.test:{server.port}") in server.requests


def test_a_name_with_any_private_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolver(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("93.184.216.34", "10.0.0.5")]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", resolver)
    (fetched,) = fetch_images(["https://mixed.test/a.png"])
    assert fetched.error == "private address"
