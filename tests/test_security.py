"""Issue 16, security: weights-only loading of cached files, and the dashboard's Host allow-list (DNS rebinding)."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nnkit.distributed import free_port
from tests.server_helpers import wait_healthy

ROOT = Path(__file__).resolve().parents[1]


class _Planted:
    """Pickled into a fake cached weights file: unpickling it would create ``path`` (code execution)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def plant_vgg_cache(torch_home: Path, marker: Path) -> Path:
    """Write a pickle whose loading creates ``marker`` where torch.hub caches torchvision's VGG-19 weights.

    Returns:
        The planted file's path (``$TORCH_HOME/hub/checkpoints/vgg19-....pth``).
    """
    from torchvision.models import VGG19_Weights

    name = os.path.basename(VGG19_Weights.IMAGENET1K_V1.url)
    path = torch_home / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": _Planted(marker)}, path)
    return path


def test_planted_pickle_is_a_real_exploit(tmp_path):
    """The planted file does run its code under a plain (unsafe) load: the tests below would catch a regression."""
    marker = tmp_path / "pwned"
    path = plant_vgg_cache(tmp_path / "torch", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_style_never_unpickles_the_cached_vgg(tmp_path, monkeypatch, capsys):
    """Acceptance: a pickle planted as the cached VGG weights does not run on ``nnkit style``."""
    from nnkit.cli import main

    marker = tmp_path / "pwned"
    plant_vgg_cache(tmp_path / "torch", marker)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "styled.png"
    assert main(["style", "--out", str(out), "--steps", "1", "--size", "32", "--device", "cpu", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert not marker.exists(), "the planted pickle ran"
    assert out.is_file()
    assert "not a plain weights file" in captured.out  # the feature network line says why it is the random one


def test_cached_plain_weights_still_load(tmp_path, monkeypatch):
    """weights_only keeps the legitimate path: a cache holding plain tensors gives the pretrained network."""
    from torchvision.models import VGG19_Weights

    from nnkit.style import load_feature_net

    reference = load_feature_net("random")
    path = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(VGG19_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in reference.body.state_dict().items()}, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("NNKIT_OFFLINE", "1")
    net = load_feature_net("auto")
    assert net.pretrained and "torchvision cache" in net.description


def test_no_unsafe_deserialisation_in_the_tree():
    """Every torch.load / hub load in nnkit, attacks and the pages passes weights_only=True; no pickle.load."""
    offenders = []
    for path in [*ROOT.glob("nnkit/**/*.py"), *ROOT.glob("attacks/**/*.py"), *ROOT.glob("app_pages/*.py"),
                 ROOT / "streamlit_app.py"]:
        text = path.read_text()
        for call in ("torch.load(", "load_state_dict_from_url("):
            for part in text.split(call)[1:]:  # the text after each call: its arguments come first
                if "weights_only=True" not in part[:300]:
                    offenders.append(f"{path.relative_to(ROOT)}: {call}")
        for call in ("pickle.load(", "pickle.loads(", "allow_pickle=True", "torch.jit.load("):
            if call in text:
                offenders.append(f"{path.relative_to(ROOT)}: {call}")
    assert not offenders, offenders


# --- the Host allow-list (DNS rebinding) ---


def ws_handshake_status(port: int, host: str, origin: str | None = None) -> int:
    """Send a websocket upgrade for ``/_stcore/stream`` to 127.0.0.1 with this Host header; the HTTP status."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /_stcore/stream HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: streamlit"]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(1024)
            if not chunk:
                break
            head += chunk
    status = head.split(b"\r\n", 1)[0].split()
    assert len(status) >= 2, f"no HTTP status line: {head[:200]!r}"
    return int(status[1])


@contextlib.contextmanager
def serving(folder: Path, extra_env: dict | None = None) -> Iterator[int]:
    """The dashboard with the repository's .streamlit/config.toml on a free 127.0.0.1 port; yields the port."""
    port = free_port()
    env = dict(os.environ, NNKIT_HOME=str(folder / "home"), NNKIT_DEVICE="cpu", **(extra_env or {}))
    with open(folder / f"streamlit-{port}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port",
                                 str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture()
def serve(tmp_path):
    """``serve(extra_env) -> port``: start the dashboard for this test (stopped at its end)."""
    with contextlib.ExitStack() as stack:
        yield lambda extra_env=None: stack.enter_context(serving(tmp_path, extra_env))


def test_websocket_refuses_a_foreign_host_name(serve):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not open the dashboard's websocket."""
    port = serve()
    assert ws_handshake_status(port, f"localhost:{port}") == 101
    assert ws_handshake_status(port, f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}") == 101
    assert ws_handshake_status(port, "evil.example") != 101
    assert ws_handshake_status(port, f"evil.example:{port}", origin=f"http://evil.example:{port}") != 101


def test_classroom_widening_from_the_readme(serve):
    """The README's way to serve a class: STREAMLIT_SERVER_ALLOWED_HOSTS adds the server's own name."""
    port = serve({"STREAMLIT_SERVER_ALLOWED_HOSTS": "localhost 127.0.0.1 labserver.local"})
    assert ws_handshake_status(port, f"labserver.local:{port}") == 101
    assert ws_handshake_status(port, f"localhost:{port}") == 101
    assert ws_handshake_status(port, "evil.example") != 101
