"""The harness itself: an Envoy whose port another process took between free_port() and the
bind is started again on fresh ports, so a busy shared machine does not fail the suite."""

import socket

import pytest

import harness

FILTERS = ["meshdlp", "router"]


@pytest.fixture
def busy_port():
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    yield held.getsockname()[1]
    held.close()


@pytest.fixture
def first_pick_busy(monkeypatch, busy_port):
    """harness.free_port() hands out the busy port first, then free ones; the picks made."""
    real = harness.free_port
    picks = []

    def first_busy():
        picks.append(1)
        return busy_port if len(picks) == 1 else real()

    monkeypatch.setattr(harness, "free_port", first_busy)
    return picks


@pytest.fixture(scope="module")
def api():
    up = harness.Upstream()
    yield up
    up.stop()


def test_a_picked_port_taken_before_the_bind_is_picked_again(first_pick_busy, busy_port, api):
    e = harness.Envoy("harness-retry", api.port, FILTERS, None)
    assert e.port == busy_port
    try:
        e.start()
        assert e.port != busy_port
        assert e.get("/clean")[0] == 200
    finally:
        e.stop()


def test_a_busy_port_passed_in_is_an_error(busy_port, api):
    e = harness.Envoy("harness-fixed", api.port, FILTERS, None, port=busy_port)
    try:
        with pytest.raises(RuntimeError, match="Address already in use"):
            e.start()
    finally:
        e.stop()


def test_a_retry_renders_the_module_the_envoy_was_made_with(monkeypatch, api):
    # The bench points WASM at a base build for one Envoy only; a retry must not swap it.
    monkeypatch.setattr(harness, "WASM", "/base/meshdlp_filter.wasm")
    e = harness.Envoy("harness-module", api.port, FILTERS, None)
    monkeypatch.setattr(harness, "WASM", "/current/meshdlp_filter.wasm")
    e.render()
    with open(e.config_path) as f:
        config = f.read()
    assert "/base/meshdlp_filter.wasm" in config
    assert "/current/" not in config


def test_the_bench_upstream_whose_port_is_taken_starts_again(first_pick_busy, busy_port, tmp_path):
    # `make bench-envoy`'s upstream Envoy picks its ports the same way.
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        "bench_envoy", os.path.join(harness.ROOT, "tests", "bench_envoy.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    body = tmp_path / "clean.json"
    body.write_bytes(b'{"ok": true}')
    up, port, admin = bench.start_upstream(str(tmp_path), {"/clean": str(body)})
    try:
        assert port != busy_port and len(first_pick_busy) >= 4
        status, _, data = harness.request("127.0.0.1", port, "GET", "/clean")
        assert (status, data) == (200, b'{"ok": true}')
    finally:
        up.kill()
        up.wait()
