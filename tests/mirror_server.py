"""A real HTTP server on 127.0.0.1 serving a folder in the mirror layout (``<host>/<path>``).

It answers ``Range`` requests (206 / 416), records every request, and has switches to fail
the ways real hosts do: 404 on chosen paths, refusal (403), the connection dropped after N
bytes, wrong bytes (same length), and a slow body (so a test can kill a download midway).
Every response also carries the headers huggingface_hub reads (``X-Repo-Commit``, ``ETag``),
so the same server stands in for a Hub endpoint (``$HF_ENDPOINT``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Switches:
    missing: set[str] = field(default_factory=set)  # path prefixes answered 404
    refused: set[str] = field(default_factory=set)  # path prefixes answered 403
    drop_after: int | None = None  # close the connection after this many body bytes ...
    drops: int = 0  # ... this many times
    corrupt: bool = False  # serve wrong bytes of the right length
    delay_s: float = 0.0  # pause per 4 KiB chunk


@dataclass
class Request:
    method: str
    path: str
    range: str | None


class MirrorServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.switches = Switches()
        self.requests: list[Request] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> MirrorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def put(self, url: str, data: bytes) -> Path:
        """Serve ``data`` as the mirror's copy of ``url`` (``<host>/<path>``)."""
        rel = url.split("://", 1)[1]
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def gets(self, fragment: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and fragment in r.path]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _serve(self, body: bool) -> None:
                sw = server.switches
                path = self.path.split("?", 1)[0]
                server.requests.append(Request(self.command, path, self.headers.get("Range")))
                if any(path.startswith(p) for p in sw.missing):
                    return self._status(404)
                if any(path.startswith(p) for p in sw.refused):
                    return self._status(403)
                target = (server.folder / path.lstrip("/")).resolve()
                if not target.is_file() or server.folder.resolve() not in target.parents:
                    return self._status(404)
                data = target.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if sw.corrupt:
                    data = bytes(b ^ 0x5A for b in data)
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    status = 206
                chunk = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{digest}"')
                self.send_header("X-Repo-Commit", "0" * 40)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return None
                if sw.drop_after is not None and sw.drops > 0:
                    sw.drops -= 1
                    self.wfile.write(chunk[: sw.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                for i in range(0, len(chunk), 4096):
                    self.wfile.write(chunk[i : i + 4096])
                    if sw.delay_s:
                        self.wfile.flush()
                        time.sleep(sw.delay_s)
                return None

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):  # noqa: N802 - http.server's naming
                self._serve(body=True)

            def do_HEAD(self):  # noqa: N802
                self._serve(body=False)

        return Handler
