"""The exchange link's HTTP/1.1 transport (issue 14, round 9), against real sockets.

What the skill's classification of a failed order rests on is checked one case at a time:
``ConnectError`` only when no byte was written; after the request went out, a broken,
silent or garbled answer is ambiguous (``RemoteProtocolError`` / ``ReadTimeout``); a
connection is reused only when its answer was whole and allowed it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import itertools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from vincent.skills.polymarket.exchange_link import ExchangeLink
from vincent.skills.polymarket.http_transport import (
    AnswerCookies,
    LeanClient,
    LeanTransport,
    _Answer,
    http11_tls_context,
    uses_proxy,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback server running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request: its request line, headers (lower-cased names) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *fields = head[:-4].split(b"\r\n")
    headers = {}
    for field in fields:
        name, _, value = field.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return line, headers, body


def answer(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"content-type: application/json", *extra]
    head.append(b"content-length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with its line and body."""
    while True:
        try:
            line, _, body = await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(answer(line + b"|" + body))
        await writer.drain()


def client(
    port: int,
    transport: LeanTransport,
    scheme: str = "http",
    timeout: httpx.Timeout = httpx.Timeout(5.0),
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{scheme}://127.0.0.1:{port}", transport=transport, timeout=timeout
    )


def lean(**kwargs: object) -> LeanTransport:
    return LeanTransport(tls_context=ssl.create_default_context, **kwargs)  # type: ignore[arg-type]


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (the transport's state has no event to wait on)
            await asyncio.sleep(0.005)


async def test_requests_reuse_one_connection_and_each_answer_is_read_whole() -> None:
    transport = lean()
    async with serving(echo_forever) as server, client(server.port, transport) as http:
        answers = [await http.post("/order?x=1", content=b"body-%d" % n) for n in range(3)]
        got = await http.get("/time")
    assert [a.content for a in answers] == [
        b"POST /order?x=1 HTTP/1.1|body-%d" % n for n in range(3)
    ]
    assert got.content == b"GET /time HTTP/1.1|"
    assert server.connections == 1
    assert transport.opened == 1
    assert answers[0].http_version == "HTTP/1.1"


async def test_the_request_carries_httpx_headers_and_its_body() -> None:
    seen: list[dict[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers, body = await read_request(reader)
        seen.append(headers)
        writer.write(answer(body))
        await writer.drain()

    async with serving(handler) as server, client(server.port, lean()) as http:
        response = await http.post("/order", json={"a": 1}, headers={"POLY_API_KEY": "k"})
    assert response.json() == {"a": 1}
    assert seen[0][b"poly_api_key"] == b"k"
    assert seen[0][b"host"] == b"127.0.0.1:%d" % server.port
    assert seen[0][b"content-type"] == b"application/json"


async def test_chunked_and_gzipped_answers_are_decoded() -> None:
    payload = gzip.compress(b'{"orderID": "0xabc", "status": "matched"}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for piece in (payload[:7], payload[7:]):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await echo_forever(reader, writer)

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        response = await http.get("/order")
        again = await http.get("/again")
    assert response.json() == {"orderID": "0xabc", "status": "matched"}
    assert again.content == b"GET /again HTTP/1.1|"
    assert transport.opened == 1  # a chunked answer leaves the connection reusable


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nto the end")
        await writer.drain()

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        first = await http.get("/a")
        second = await http.get("/b")
    assert first.content == second.content == b"to the end"
    assert transport.opened == server.connections == 2


async def test_connection_close_is_honoured() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"once", b"connection: close"))
        await writer.drain()
        await reader.read()  # the client closes its side

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        await http.get("/a")
        await http.get("/b")
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_written_to() -> None:
    received_after: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()
        writer.close()  # an edge dropping an idle keep-alive connection
        received_after.append(await reader.read())

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        await http.get("/a")
        await eventually(lambda: transport.idle_connections() == 0)
        second = await http.get("/b")  # would be ambiguous if written to the dead one
    assert second.content == b"ok"
    assert server.connections == 2
    assert received_after[0] == b""


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with serving(echo_forever) as server:
        port = server.port
    with pytest.raises(httpx.ConnectError):
        async with client(port, lean()) as http:
            await http.post("/order", content=b"x")


async def test_no_answer_after_the_request_is_ambiguous_not_a_connect_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # took the order, then the connection broke

    async with serving(handler) as server, client(server.port, lean()) as http:
        with pytest.raises(httpx.RemoteProtocolError) as raised:
            await http.post("/order", content=b"x")
    assert not isinstance(raised.value, httpx.ConnectError)


async def test_an_answer_cut_short_is_ambiguous() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()

    async with serving(handler) as server, client(server.port, lean()) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/order", content=b"x")


async def test_a_malformed_answer_is_a_protocol_error_and_the_connection_goes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 2x0 What\r\n\r\n")
        await writer.drain()
        await reader.read()

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/order", content=b"x")
    assert transport.idle_connections() == 0


async def test_a_silent_server_is_a_read_timeout_and_the_connection_is_closed() -> None:
    eof = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()
        eof.set()

    async with serving(handler) as server:
        http = client(server.port, lean(), timeout=httpx.Timeout(5.0, read=0.2))
        async with http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post("/order", content=b"x")
        async with asyncio.timeout(5):
            await eof.wait()


async def test_a_slow_answer_that_keeps_coming_is_not_a_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n")
        for piece in (b"ab", b"cd", b"ef"):
            await asyncio.sleep(0.2)  # each gap under the read timeout, the sum over it
            writer.write(piece)
            await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        http = client(server.port, lean(), timeout=httpx.Timeout(5.0, read=0.5))
        async with http:
            response = await http.get("/slow")
    assert response.content == b"abcdef"


async def test_a_header_that_would_split_the_request_is_refused_before_anything_is_sent() -> None:
    async with serving(echo_forever) as server, client(server.port, lean()) as http:
        with pytest.raises(httpx.LocalProtocolError):
            await http.post("/order", content=b"x", headers={"X-A": "1\r\nX-B: 2"})
    assert server.connections == 0


async def test_a_cancelled_request_does_not_leave_its_connection_for_the_next() -> None:
    release = asyncio.Event()
    first_received = asyncio.Event()
    first_eof = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await read_request(reader)
        if line.startswith(b"POST /held"):
            first_received.set()
            await release.wait()
            writer.write(answer(b"late answer to /held"))
            await writer.drain()
            if await reader.read() == b"":
                first_eof.set()
            return
        writer.write(answer(line))
        await writer.drain()

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        held = asyncio.create_task(http.post("/held", content=b"x"))
        await first_received.wait()
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        release.set()
        response = await http.post("/next", content=b"y")
        async with asyncio.timeout(5):
            await first_eof.wait()
    assert response.content == b"POST /next HTTP/1.1"
    assert server.connections == 2


async def test_a_request_beyond_the_limit_waits_for_a_slot_then_times_out() -> None:
    release = asyncio.Event()
    received = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        received.set()
        await release.wait()
        writer.write(answer(b"done"))
        await writer.drain()
        await echo_forever(reader, writer)

    async with serving(handler) as server:
        http = client(server.port, lean(max_connections=1), timeout=httpx.Timeout(5.0, pool=0.1))
        async with http:
            first = asyncio.create_task(http.get("/first"))
            await received.wait()
            with pytest.raises(httpx.PoolTimeout):
                await http.get("/second")
            release.set()
            assert (await first).content == b"done"
            assert (await http.get("/third")).content == b"GET /third HTTP/1.1|"


async def test_interim_answers_are_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + answer(b"final"))
        await writer.drain()
        await reader.read()

    async with serving(handler) as server, client(server.port, lean()) as http:
        response = await http.get("/x")
    assert response.status_code == 200
    assert response.content == b"final"
    assert "link" not in response.headers


def _certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key) files."""
    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", ca_key, None, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", key, ca.subject, ca_key, False)
    paths = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_https_verifies_the_server_and_speaks_http_1_1_even_if_h2_is_offered(
    tmp_path: Path,
) -> None:
    ca, cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server_tls.set_alpn_protocols(["h2", "http/1.1"])
    negotiated: list[str | None] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        negotiated.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        await echo_forever(reader, writer)

    def trusting_the_test_ca() -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca))
        context.set_alpn_protocols(["h2", "http/1.1"])  # as a shared context may carry
        return context

    transport = LeanTransport(tls_context=http11_tls_context(trusting_the_test_ca))
    async with serving(handler, server_tls) as server:
        async with client(server.port, transport, "https") as http:
            first = await http.post("/order", content=b"over tls")
            second = await http.get("/time")
        assert first.content == b"POST /order HTTP/1.1|over tls"
        assert second.content == b"GET /time HTTP/1.1|"
        assert negotiated == ["http/1.1"]
        # A server the CA did not sign is refused before anything is sent.
        untrusting = LeanTransport(tls_context=ssl.create_default_context)
        with pytest.raises(httpx.ConnectError):
            async with client(server.port, untrusting, "https") as http:
                await http.post("/order", content=b"x")
    assert server.connections == 1  # the refused handshake never reached a request


@given(
    body=st.binary(max_size=3000),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_an_answer_split_anywhere_reads_the_same(
    body: bytes, chunked: bool, cuts: list[int]
) -> None:
    if chunked:
        pieces = [body[i : i + 700] for i in range(0, len(body), 700)]
        wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
        wire += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        wire = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-a: 1\r\n\r\n" % len(body) + body
    loop = asyncio.new_event_loop()
    try:
        read = _Answer(loop)
        edges = sorted({min(cut, len(wire)) for cut in cuts} | {0, len(wire)})
        for start, end in itertools.pairwise(edges):
            assert not read.done.done()
            read.feed(wire[start:end])
        assert read.done.done() and read.done.exception() is None
        assert b"".join(read.body) == body
        assert (b"x-a", b"1") in read.headers
        assert read.status == 200 and read.keep_alive and read.framed
    finally:
        loop.close()


def test_behind_a_proxy_the_link_keeps_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(ExchangeLink("https://clob.example").transport, LeanTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert uses_proxy("https://clob.example")
    assert ExchangeLink("https://clob.example").transport is None
    monkeypatch.setenv("NO_PROXY", "clob.example")
    assert not uses_proxy("https://clob.example")


async def test_connections_kept_open_serve_a_burst_without_new_handshakes() -> None:
    release = asyncio.Event()
    arrived = 0
    all_arrived = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        while True:
            try:
                line, _, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            arrived += 1
            if arrived == 4:
                all_arrived.set()
            await release.wait()
            writer.write(answer(line))
            await writer.drain()

    transport = lean()
    async with serving(handler) as server, client(server.port, transport) as http:
        url = f"http://127.0.0.1:{server.port}/"
        assert await transport.keep_open(url, 4) == 4
        assert await transport.keep_open(url, 4) == 0  # already open
        assert transport.idle_connections() == 4
        burst = [asyncio.create_task(http.post(f"/order/{n}", content=b"x")) for n in range(4)]
        async with asyncio.timeout(5):
            await all_arrived.wait()  # four requests in flight at once
        release.set()
        answers = await asyncio.gather(*burst)
    assert sorted(a.content for a in answers) == [b"POST /order/%d HTTP/1.1" % n for n in range(4)]
    assert transport.opened == server.connections == 4  # all opened ahead of the burst


async def test_a_connection_kept_open_goes_below_the_one_last_used() -> None:
    opened = 0

    async def numbered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        mine = b"%d" % opened
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(answer(mine))
            await writer.drain()

    async with serving(numbered) as server:
        transport = lean()
        async with client(server.port, transport) as http:
            first = await http.get("/first")
            assert await transport.keep_open(f"http://127.0.0.1:{server.port}", 3) == 2
            second = await http.get("/second")
    # The request took the connection the last one used (the ping's, in the worker).
    assert first.content == second.content == b"1"
    assert server.connections == 3


URL_PATHS = st.sampled_from(
    ["/order", "order", "/data/trades", "/book?token_id=1", "/a/b/../c", "/%7Euser", "", "/ü"]
)


@given(
    base=st.sampled_from(["https://clob.example", "http://127.0.0.1:8080/sub", "http://h/p/"]),
    paths=st.lists(st.one_of(URL_PATHS, st.just("https://other.example/x?y=1")), max_size=12),
)
def test_the_lean_client_merges_urls_as_httpx_does(base: str, paths: list[str]) -> None:
    ours, theirs = LeanClient(base_url=base), httpx.AsyncClient(base_url=base)
    for path in paths:
        assert ours.build_request("GET", path).url == theirs.build_request("GET", path).url
        merged = ours.build_request("GET", path, params={"market": "m"}).url
        assert merged == theirs.build_request("GET", path, params={"market": "m"}).url


def test_the_lean_client_merges_with_the_base_url_set_last() -> None:
    client = LeanClient(base_url="https://one.example/api")
    assert str(client.build_request("GET", "/order").url) == "https://one.example/api/order"

    client.base_url = httpx.URL("https://two.example")

    assert str(client.build_request("GET", "/order").url) == "https://two.example/order"


def test_the_lean_client_keeps_at_most_its_bound_of_urls() -> None:
    client = LeanClient(base_url="https://clob.example")
    for number in range(LeanClient.MAX_URLS + 50):
        url = client.build_request("GET", f"/order/{number}").url
        assert str(url) == f"https://clob.example/order/{number}"
    assert len(client._merged) == LeanClient.MAX_URLS


class CountingJar(CookieJar):
    """A cookie jar (the standard library's) that counts the answers handed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.handed = 0

    def extract_cookies(self, response: Any, request: Any) -> None:
        self.handed += 1
        super().extract_cookies(response, request)


async def test_only_answers_setting_a_cookie_reach_the_cookie_jar() -> None:
    """``AnswerCookies``: an answer without ``Set-Cookie`` skips the jar (it would take
    nothing from it); one with it is stored and sent back, as httpx's own cookies do."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line, headers, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            cookie = headers.get(b"cookie", b"-")
            extra = [b"set-cookie: seen=1; Path=/"] if line.startswith(b"GET /set") else []
            writer.write(answer(cookie, *extra))
            await writer.drain()

    jar = CountingJar()
    async with serving(handler) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with LeanClient(base_url=base, transport=lean(), cookies=jar) as lean_client:
            assert (await lean_client.get("/plain")).content == b"-"
            assert (await lean_client.post("/plain", content=b"x")).content == b"-"
            assert jar.handed == 0
            await lean_client.get("/set")
            assert jar.handed == 1
            assert lean_client.cookies.get("seen") == "1"
            assert (await lean_client.get("/plain")).content == b"seen=1"
            lean_client.cookies = CountingJar()  # a jar set later is wrapped the same way
            assert isinstance(lean_client.cookies, AnswerCookies)
            await lean_client.get("/set")
            assert lean_client.cookies.get("seen") == "1"
