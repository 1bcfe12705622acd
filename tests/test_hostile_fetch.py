"""Thumbnail downloads against hostile URLs and servers (issue 11): addresses in every spelling,
credentials, redirects, slow servers, oversized images."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from PIL import Image

from outlyne.search.addresses import is_public_address
from outlyne.search.fetch import FetchLimits, fetch_images
from outlyne_dev.hostile import encoded, png_declaring
from outlyne_dev.search_bench import ImageServer, Route

# IPv6 spellings of IPv4 loopback and private addresses (the four first).
HIDDEN_PRIVATE = [
    "::127.0.0.1",  # v4-compatible
    "64:ff9b::7f00:1",  # NAT64
    "2002:7f00:1::1",  # 6to4
    "::ffff:0:7f00:1",  # SIIT v4-translated
    "::ffff:127.0.0.1",  # v4-mapped
    "::ffff:169.254.169.254",  # cloud metadata, v4-mapped
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64
]
PLAIN_PRIVATE = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1"]
PLAIN_PRIVATE += ["255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fec0::1", "ff02::1", "2001:db8::1"]
PUBLIC = ["8.8.8.8", "2001:4860:4860::8888", "64:ff9b::808:808", "2002:808:808::1", "::ffff:1.1.1.1"]


@pytest.mark.parametrize("address", HIDDEN_PRIVATE + PLAIN_PRIVATE)
def test_private_loopback_link_local_multicast_reserved_in_every_spelling_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_even_when_embedded(address: str) -> None:
    assert is_public_address(address)


def test_loopback_allowance_never_admits_private_networks() -> None:
    assert is_public_address("64:ff9b::7f00:1", allow_loopback=True)
    assert not is_public_address("2002:a00:1::1", allow_loopback=True)


RED = encoded(Image.new("RGB", (1000, 800), "red"))
LOOPBACK_OK = FetchLimits(timeout=2, deadline=10, allow_loopback=True)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    routes = {
        "/red.png": Route(RED),
        "/declares-3000.png": Route(png_declaring(3000, 3000)),
        "/to-6to4-private": Route(status=302, headers=(("Location", "http://[2002:a00:1::1]/x.png"),)),
        "/to-nat64-loopback": Route(status=302, headers=(("Location", "http://[64:ff9b::7f00:1]/x.png"),)),
        "/to-credentials": Route(status=302, headers=(("Location", "http://me:secret@127.0.0.1:9/x.png"),)),
    }
    with ImageServer(routes) as running:
        yield running


@pytest.mark.parametrize(
    "host", ["[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]", "[::ffff:0:7f00:1]"]
)
def test_urls_to_embedded_loopback_are_refused_before_connecting(host: str) -> None:
    (fetched,) = fetch_images([f"http://{host}:8080/x.png"], FetchLimits(timeout=2, deadline=5))
    assert fetched.error == "private address"


@pytest.mark.parametrize("path", ["/to-6to4-private", "/to-nat64-loopback"])
def test_every_redirect_is_checked_again(server: ImageServer, path: str) -> None:
    limits = FetchLimits(timeout=2, deadline=5, allow_loopback=path != "/to-nat64-loopback")
    (fetched,) = fetch_images([server.url(path)], limits)
    assert fetched.error == "private address"


def test_credentials_in_a_url_are_refused_and_never_sent(server: ImageServer) -> None:
    url = server.url("/red.png").replace("http://", "http://me:secret@")
    (fetched,) = fetch_images([url], LOOPBACK_OK)
    assert fetched.error == "credentials in url"
    (redirected,) = fetch_images([server.url("/to-credentials")], LOOPBACK_OK)
    assert redirected.error == "credentials in url"
    assert all(path != "/x.png" for path, _ in server.requests)


def test_pixel_cap_and_kept_size_per_thumbnail(server: ImageServer) -> None:
    big, red = fetch_images([server.url("/declares-3000.png"), server.url("/red.png")], LOOPBACK_OK)
    assert big.error == "too large"
    assert red.error is None and red.image.size == (448, 358)


def test_a_whole_search_has_a_memory_bound() -> None:
    # The bound the fetcher is designed to: 60 thumbnails (the page's maximum) in well under 400 MB.
    assert FetchLimits().memory_bound(60) < 400_000_000


class DrippingServer:
    """Sends headers, then one body byte every 50 ms for as long as the socket stays open; records when
    the client closes it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.closed_by_client = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/drip.png"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        connection.recv(4096)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n")
        try:
            while not self.stop.wait(0.05):
                connection.sendall(b"x")
        except OSError:
            self.closed_by_client.set()
        finally:
            connection.close()


def test_a_dripping_server_is_cut_off_at_the_deadline_and_its_socket_closed() -> None:
    drip = DrippingServer()
    try:
        limits = FetchLimits(timeout=0.5, deadline=30, allow_loopback=True)
        (fetched,) = fetch_images([drip.url], limits)
        assert fetched.error == "timeout"
        # Before this fix the read went on (bytes kept arriving, so no read ever timed out). Now the
        # client closes the socket: the server's next send fails.
        assert drip.closed_by_client.wait(30)
    finally:
        drip.stop.set()
        drip.listener.close()
