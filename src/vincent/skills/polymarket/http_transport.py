"""A lean HTTP/1.1 transport for httpx: the exchange link's requests, without httpcore.

Measured on the 2-core benchmark machine (issue 14, round 9): one request through
``httpx.AsyncClient`` costs ~2.0 ms of the event loop's CPU with httpx's default transport
(httpcore's pool, h11's state machine, anyio's stream wrappers and locks), ~0.45 ms of which
is httpx's client itself; ~0.9 ms with this one (``python -m bench.order_path_costs``).
Every fire's ``POST /order`` and every settlement check paid it.
``LeanTransport`` keeps httpx's client (the SDK builds requests and reads responses through
it, and sees the same exception classes) and replaces only what moves bytes: per origin a
LIFO of idle keep-alive connections (``asyncio.Protocol``), the request written with one
``write`` (head and body together), and the answer parsed by ``httptools`` (llhttp, in C;
uvicorn's parser).

What the skill relies on is kept exactly (``exchange_errors.skill_error_of``):

- ``httpx.ConnectError`` / ``httpx.ConnectTimeout`` only when no byte of the request was
  written: the connection (or its TLS handshake) never opened. A pooled connection the
  server closed while idle is dropped before use, never written to.
- Once the request is written, any failure is ambiguous: ``httpx.ReadTimeout``,
  ``httpx.RemoteProtocolError`` (the server closed or answered garbage), ``httpx.ReadError``.
- A cancelled request closes its connection (a half-read answer is never reused).

Only HTTP/1.1: ALPN offers ``http/1.1`` alone, so a server never picks HTTP/2 (the SDK asks
httpx for HTTP/2 by default; over HTTP/1.1 concurrent requests take one connection each).
Requests it is not built for (a streamed body, ``HEAD``, ``CONNECT``) go to ``fallback``
(httpx's own transport). Pure I/O at the edge: the parsing of an answer is llhttp's.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

import httptools
import httpx
from httpx._utils import URLPattern, get_environment_proxies

_FORBIDDEN_IN_HEADERS = (b"\r", b"\n", b"\x00")
_DELEGATED_METHODS = frozenset({"HEAD", "CONNECT"})

Origin = tuple[str, str, int]


def _timeout(request: httpx.Request, name: str) -> float | None:
    value = request.extensions.get("timeout", {}).get(name)
    return value if isinstance(value, int | float) else None


class _Answer:
    """One response being read: llhttp's callbacks fill it; ``done`` resolves once whole."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[None] = loop.create_future()
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.reason = b""
        self.status = 0
        self.received = False  # any byte of the answer arrived
        self.headers_complete = False
        self.framed = False  # its length is known (Content-Length or chunked)
        self.extra = False  # bytes after the answer: the connection is not reusable
        self.keep_alive = False  # the answer allows the connection's reuse
        self.deadline: asyncio.Timeout | None = None
        self.read_timeout: float | None = None

    # llhttp's callbacks
    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_complete = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (103 Early Hints): the real one follows
            self.headers.clear()
            self.body.clear()
            self.reason = b""
            self.status = 0
            self.headers_complete = False
            self.framed = False
            return
        # llhttp knows it only now (after this callback it reads as a new message's).
        self.keep_alive = self.parser.should_keep_alive()
        if not self.done.done():
            self.done.set_result(None)

    # from the connection
    def feed(self, data: bytes) -> None:
        if self.done.done():
            self.extra = True
            return
        self.received = True
        if self.deadline is not None and self.read_timeout is not None:
            self.deadline.reschedule(asyncio.get_running_loop().time() + self.read_timeout)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(f"malformed answer from the server: {error}")

    def ended(self) -> None:
        """The server closed its side. A body without a length ends there; otherwise the
        answer was cut short."""
        if self.done.done():
            return
        if self.headers_complete and not self.framed:
            self.done.set_result(None)
            return
        if self.received:
            self.fail("the server closed the connection in the middle of its answer")
        else:
            self.fail("the server closed the connection without sending an answer")

    def fail(self, message: str) -> None:
        if not self.done.done():
            self.done.set_exception(_Broken(message))


class _Broken(Exception):
    """The connection broke or the answer was not HTTP (becomes ``RemoteProtocolError``)."""


class _Connection(asyncio.Protocol):
    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answer: _Answer | None = None
        self.idle_since = 0.0
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (under ``vincent serve``) are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.answer is None:  # nothing was asked: a server talking out of turn
            self.close()
            return
        self.answer.feed(data)

    def eof_received(self) -> bool:
        self.closed = True
        if self.answer is not None:
            self.answer.ended()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None:
            self.answer.ended()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(_Broken("the connection closed while writing"))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    async def drained(self) -> None:
        if self._writable is not None:
            await self._writable

    def usable(self, now: float, expiry: float) -> bool:
        transport = self.transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < expiry
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive connections per origin; see the module's docstring.

    ``max_connections`` bounds the requests in flight (a request beyond it waits up to the
    request's ``pool`` timeout); at most ``max_keepalive`` idle connections are kept, each
    for ``keepalive_expiry`` seconds.
    """

    def __init__(
        self,
        *,
        tls_context: Callable[[], ssl.SSLContext],
        max_connections: int = 100,
        max_keepalive: int = 20,
        keepalive_expiry: float = 120.0,
        fallback: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tls_context = tls_context
        self._tls: ssl.SSLContext | None = None
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._fallback = fallback
        self._clock = clock
        self.opened = 0  # connections opened so far (for tests and the benchmark)

    def idle_connections(self) -> int:
        """Idle connections still open (one the server closed no longer counts)."""
        return sum(not connection.closed for idle in self._idle.values() for connection in idle)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (
            request.method in _DELEGATED_METHODS
            or not isinstance(request.stream, httpx.ByteStream)
            or "transfer-encoding" in request.headers
            or request.url.scheme not in ("http", "https")
        ):
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport()
            return await self._fallback.handle_async_request(request)
        head = _request_head(request)
        pool_timeout = _timeout(request, "pool")
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection slot free in time", request=request) from None
        try:
            return await self._exchange(request, head + request.content)
        finally:
            self._slots.release()

    async def keep_open(self, url: str, count: int, *, timeout_s: float = 5.0) -> int:
        """Have at least ``count`` idle connections to ``url``'s origin open: over HTTP/1.1
        each request in flight takes a connection of its own, so a burst of orders finds
        them without a handshake (~2 round trips each on the real network). New ones go
        below the idle ones already there (a request still takes the most recently used).
        Returns how many it opened; a connection that fails to open is left to the next
        call (``httpx.ConnectError`` / ``ConnectTimeout`` raised once all were tried)."""
        origin = _origin_of(httpx.URL(url))
        now = self._clock()
        open_now = [c for c in self._idle.get(origin, []) if c.usable(now, self._expiry)]
        missing = max(0, min(count, self._max_keepalive) - len(open_now))
        if not missing:
            return 0
        request = httpx.Request("GET", url, extensions={"timeout": {"connect": timeout_s}})
        opened = await asyncio.gather(
            *(self._connect(origin, request) for _ in range(missing)), return_exceptions=True
        )
        idle = self._idle.setdefault(origin, [])
        new = [connection for connection in opened if isinstance(connection, _Connection)]
        for connection in new:
            connection.idle_since = self._clock()
        idle[:0] = new
        failed = [error for error in opened if isinstance(error, BaseException)]
        if failed:
            raise failed[0]
        return len(new)

    async def _exchange(self, request: httpx.Request, data: bytes) -> httpx.Response:
        origin = _origin_of(request.url)
        connection = self._idle_connection(origin)
        if connection is None:
            connection = await self._connect(origin, request)
        self._busy.add(connection)
        reusable = False
        try:
            response, reusable = await self._send_and_read(connection, request, data)
            return response
        finally:
            self._busy.discard(connection)
            connection.answer = None
            if reusable and not connection.closed:
                self._keep(connection)
            else:
                connection.close()

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = self._clock()
        while idle:
            connection = idle.pop()  # the most recently used: the warmest
            if connection.usable(now, self._expiry):
                return connection
            connection.close()
        return None

    def _keep(self, connection: _Connection) -> None:
        connection.idle_since = self._clock()
        idle = self._idle.setdefault(connection.origin, [])
        idle.append(connection)
        if sum(len(kept) for kept in self._idle.values()) > self._max_keepalive:
            idle.pop(0).close()  # the coldest goes

    async def _connect(self, origin: Origin, request: httpx.Request) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = self._tls_context()
            tls = self._tls
        connection = _Connection(origin)
        try:
            async with asyncio.timeout(_timeout(request, "connect")):
                await loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except TimeoutError:
            connection.close()
            raise httpx.ConnectTimeout("connecting timed out", request=request) from None
        except (OSError, ssl.SSLError) as error:
            connection.close()
            raise httpx.ConnectError(str(error) or type(error).__name__, request=request) from error
        self.opened += 1
        return connection

    async def _send_and_read(
        self, connection: _Connection, request: httpx.Request, data: bytes
    ) -> tuple[httpx.Response, bool]:
        transport = connection.transport
        assert transport is not None
        answer = _Answer(asyncio.get_running_loop())
        connection.answer = answer
        read_timeout = _timeout(request, "read")
        answer.read_timeout = read_timeout
        if connection.closed:  # closed by the server right after it opened: nothing written
            raise httpx.ConnectError("the server closed the connection at once", request=request)
        try:
            transport.write(data)
            # From here the request may have reached the server: every failure is ambiguous.
            if connection._writable is not None:
                async with asyncio.timeout(_timeout(request, "write")):
                    await connection.drained()
            async with asyncio.timeout(read_timeout) as deadline:
                answer.deadline = deadline
                await answer.done
        except TimeoutError:
            raise httpx.ReadTimeout("the server did not answer in time", request=request) from None
        except _Broken as error:
            raise httpx.RemoteProtocolError(str(error), request=request) from None
        except OSError as error:
            raise httpx.ReadError(str(error) or type(error).__name__, request=request) from error
        reusable = answer.framed and not answer.extra and answer.keep_alive
        response = httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=httpx.ByteStream(b"".join(answer.body)),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason},
        )
        return response, reusable

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()
        if self._fallback is not None:
            await self._fallback.aclose()


def _origin_of(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers, refusing a header that would split the message."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        if any(bad in name or bad in value for bad in _FORBIDDEN_IN_HEADERS) or b":" in name:
            raise httpx.LocalProtocolError(
                f"header {name!r} holds a character HTTP/1.1 forbids", request=request
            )
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def http11_tls_context(build: Callable[[], ssl.SSLContext]) -> Callable[[], ssl.SSLContext]:
    """A context from ``build`` that offers only ``http/1.1`` in ALPN, built on first use."""

    def make() -> ssl.SSLContext:
        context = build()
        context.set_alpn_protocols(["http/1.1"])
        return context

    return make


def http11_default_tls() -> ssl.SSLContext:
    """httpx's default TLS settings (its CA bundle, ``SSL_CERT_FILE``...), in a context of
    its own that offers only ``http/1.1``."""
    return http11_tls_context(httpx.create_ssl_context)()


def lean_transport_for(
    *urls: str, max_connections: int = 100, max_keepalive: int = 20, keepalive_expiry: float
) -> LeanTransport | None:
    """A ``LeanTransport`` for a client that talks to ``urls``; None (keep httpx's own) when
    the environment sends any of them through a proxy."""
    if any(uses_proxy(url) for url in urls):
        return None
    return LeanTransport(
        tls_context=http11_default_tls,
        max_connections=max_connections,
        max_keepalive=max_keepalive,
        keepalive_expiry=keepalive_expiry,
    )


def uses_proxy(url: str) -> bool:
    """Whether httpx, trusting the environment, would send requests to ``url`` through a
    proxy (the lean transport does not speak to proxies: such a link keeps httpx's). The
    same reading of ``HTTPS_PROXY`` / ``NO_PROXY``... as httpx's (its own functions)."""
    target = httpx.URL(url)
    matches = [(URLPattern(pattern), proxy) for pattern, proxy in get_environment_proxies().items()]
    matches.sort(key=lambda match: match[0])  # httpx's order: the most specific first
    for pattern, proxy in matches:
        if pattern.matches(target):
            return proxy is not None
    return False


class AnswerCookies(httpx.Cookies):
    """httpx's cookies, which hand an answer to the jar only if it sets a cookie.

    httpx hands every answer to the ``http.cookiejar`` jar, wrapped as a urllib request
    and response (~25 µs, two per fire); the jar takes cookies from ``Set-Cookie`` and
    ``Set-Cookie2`` headers only (``CookieJar.make_cookies``), so an answer with neither
    leaves it as it was.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class LeanClient(httpx.AsyncClient):
    """httpx's client, merging each request's URL string with ``base_url`` once per string.

    httpx parses the string and copies the base URL for every request (two ``urlparse``
    calls, ~20 % of the client's own CPU per request, ``python -m bench.order_path_costs``),
    though the SDK and the skill ask for the same few paths over and over (``/order``,
    ``/data/trades``...; query parameters are passed apart and merged by httpx as before).
    ``httpx.URL`` is immutable, so a merged URL is shared. The memo starts over when
    ``base_url`` is set, and holds at most ``MAX_URLS`` strings (later ones are merged each
    time). Overrides httpx's ``_merge_url`` (httpx is pinned; the tests compare the two).
    Its cookies are ``AnswerCookies``: an answer without ``Set-Cookie`` is not handed to
    the cookie jar (round 12: that took ~3 % of the worker's CPU in a burst of fires).
    """

    MAX_URLS = 256

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = AnswerCookies(self._cookies.jar)  # the same jar, its policy kept
        self._merged: dict[str, httpx.URL] = {}
        self._merged_for = self.base_url

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._cookies = AnswerCookies(httpx.Cookies(cookies).jar)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if not isinstance(url, str):
            return super()._merge_url(url)
        if self.base_url is not self._merged_for:
            self._merged.clear()
            self._merged_for = self.base_url
        merged = self._merged.get(url)
        if merged is None:
            merged = super()._merge_url(url)
            if len(self._merged) < self.MAX_URLS:
                self._merged[url] = merged
        return merged
