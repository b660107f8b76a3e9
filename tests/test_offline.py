"""The test session cannot reach the network (tests/offline.py), and local links still work."""

from __future__ import annotations

import socket

import pytest

from offline import NetworkUsed


@pytest.mark.parametrize("address", [("192.0.2.1", 80), ("pypi.org", 443), ("2001:db8::1", 443)])
def test_a_connection_past_this_machine_fails_the_test(address):
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(NetworkUsed, match="must not reach the network"):
        s.connect(address)
    with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(NetworkUsed):
        s.connect_ex(address)


def test_a_download_through_urllib_fails_before_it_leaves_the_machine():
    import urllib.request

    # urllib wraps socket errors in URLError; the guard's error is what it carries
    with pytest.raises(Exception) as e:
        urllib.request.urlopen("http://192.0.2.1/model.tflite", timeout=5)
    assert "must not reach the network" in str(e.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_local_links_stay_open(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection((host, server.getsockname()[1]), timeout=5) as client:
            peer, _ = server.accept()
            client.sendall(b"ping")
            assert peer.recv(4) == b"ping"
            peer.close()
