"""A local stand-in for GitHub's raw-file host, for the fetcher's tests (tests/data/test_fetch.py).

:class:`Mirror` serves files (bytes, or paths read when asked) under URL paths such as
``/<owner>/<repo>/<commit>/<path>`` on 127.0.0.1, with ``Range: bytes=N-`` answered by 206 (or
ignored, ``ranges=False``), 416 past the end, 404 for anything else. Every request is recorded
(path, Range header); a path in ``drop_once`` gets its headers and half of its bytes, then the
connection is closed (once). Nothing here reaches outside the machine.
"""

from __future__ import annotations

import http.server
import pathlib
import re
import threading
import urllib.parse
from typing import Dict, List, Optional, Set, Tuple, Union

Body = Union[bytes, pathlib.Path]


class Mirror:
  """``with Mirror(files) as m: ... m.url ...``: a threaded HTTP server on a free port."""

  def __init__(self, files: Dict[str, Body], ranges: bool = True):
    self.files = dict(files)
    self.ranges = ranges
    self.drop_once: Set[str] = set()
    self.requests: List[Tuple[str, Optional[str]]] = []
    self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    self._server.mirror = self
    self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

  @property
  def url(self) -> str:
    return f"http://127.0.0.1:{self._server.server_address[1]}"

  def body(self, path: str) -> Optional[bytes]:
    found = self.files.get(path)
    return found.read_bytes() if isinstance(found, pathlib.Path) else found

  def gets(self, path: str) -> List[Optional[str]]:
    """The Range header (None: none) of each request for ``path``."""
    return [r for p, r in self.requests if p == path]

  def __enter__(self) -> "Mirror":
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._server.shutdown()
    self._server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
  def do_GET(self):  # noqa: N802 (http.server's name)
    mirror: Mirror = self.server.mirror
    path = urllib.parse.unquote(self.path)
    rng = self.headers.get("Range")
    mirror.requests.append((path, rng))
    body = mirror.body(path)
    if body is None:
      self.send_error(404, "Not Found")
      return
    start = 0
    match = re.fullmatch(r"bytes=(\d+)-", rng or "")
    if match and mirror.ranges:
      start = int(match.group(1))
      if start >= len(body):
        self.send_response(416, "Range Not Satisfiable")
        self.send_header("Content-Range", f"bytes */{len(body)}")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
      self.send_response(206, "Partial Content")
      self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    else:
      self.send_response(200)
    data = body[start:]
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    if path in mirror.drop_once:
      mirror.drop_once.discard(path)
      self.wfile.write(data[: len(data) // 2])
      self.wfile.flush()
      self.close_connection = True
      return
    self.wfile.write(data)

  def log_message(self, *args):  # quiet
    pass
