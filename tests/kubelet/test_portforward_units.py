"""SPDY/3.1 framing and the port-forward session logic, without a kubelet: frames through a
client-side codec, targets on socket pairs (nothing listens). The real clients end to end:
tests/kubelet/test_kubectl_port_forward.py and test_python_client_pods.py."""
from __future__ import annotations

import asyncio
import socket
import struct
import zlib

import pytest

from kproxy.api.status import ApiError
from kproxy.kubelet import portforward, spdy


def test_dictionary_is_the_spdy3_one():
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"\x00\x00\x00\x06origin100101201202205206300302303304305306307402405406407408"
                                    b"409410411412413414415416417502504505203 Non-Authoritative Information204 No "
                                    b"Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 "
                                    b"Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
                                    b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, "
                                    b"Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
                                    b"xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
                                    b"deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def test_header_blocks_share_one_compression_stream_per_direction():
    ours, theirs = spdy.HeaderCodec(), spdy.HeaderCodec()
    blocks = [{"streamtype": "error", "port": "8080", "requestid": str(i)} for i in range(3)] + [{}]
    encoded = [ours.encode(h) for h in blocks]
    assert [theirs.decode(e) for e in encoded] == blocks
    # later blocks lean on earlier ones: alone, without the stream's history, one cannot be read
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderCodec().decode(encoded[1])


def test_frames_come_out_whole_however_the_bytes_are_sliced():
    codec = spdy.HeaderCodec()
    stream = (spdy.syn_stream(1, codec.encode({"port": "80"})) + spdy.data(1, b"x" * 70000, fin=True)
              + spdy.ping(b"\0\0\0\7") + spdy.rst_stream(1, spdy.RST_CANCEL))
    reader, frames = spdy.FrameReader(), []
    for i in range(0, len(stream), 997):
        frames += reader.feed(stream[i:i + 997])
    assert [type(f).__name__ for f in frames] == ["Control", "Data", "Control", "Control"]
    assert frames[1] == spdy.Data(1, spdy.FLAG_FIN, b"x" * 70000)
    assert [f.type for f in frames if isinstance(f, spdy.Control)] == [spdy.SYN_STREAM, spdy.PING, spdy.RST_STREAM]
    assert not reader.buffer


def test_a_frame_of_another_version_is_a_protocol_error():
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameReader().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")


@pytest.mark.parametrize("values, message", [
    ([], 'query parameter "port" is required'),
    ([""], 'query parameter "port" cannot be empty'),
    (["0"], 'port "0" must be > 0'),
    (["80,x"], 'unable to parse "80,x" as a port: strconv.ParseUint: parsing "x": invalid syntax'),
    (["70000"], 'unable to parse "70000" as a port: strconv.ParseUint: parsing "70000": value out of range'),
])
def test_bad_ports_are_refused_with_kubelets_messages(values, message):
    with pytest.raises(ApiError) as raised:
        portforward.parse_ports(values)
    assert raised.value.status["code"] == 400 and raised.value.status["message"] == message


def test_ports_repeat_or_come_as_a_list():
    assert portforward.parse_ports(["80,443", "8080"]) == (80, 443, 8080)


class Client:
    """The client's side of a SPDY session (what spdystream does for kubectl)."""

    def __init__(self) -> None:
        self.codec = spdy.HeaderCodec()
        self.reader = spdy.FrameReader()
        self.received: list[spdy.Control | spdy.Data] = []
        self.next_id = 1

    def open_pair(self, port: int, request_id: str) -> tuple[bytes, int, int]:
        error_id, data_id = self.next_id, self.next_id + 2
        self.next_id += 4
        wire = b"".join(spdy.syn_stream(sid, self.codec.encode({"streamtype": kind, "port": str(port),
                                                                 "requestid": request_id}))
                        for sid, kind in ((error_id, "error"), (data_id, "data")))
        return wire, error_id, data_id

    async def take(self, chunk: bytes) -> None:
        self.received += self.reader.feed(chunk)

    def data_on(self, stream_id: int) -> tuple[bytes, bool]:
        frames = [f for f in self.received if isinstance(f, spdy.Data) and f.stream_id == stream_id]
        return b"".join(f.data for f in frames), any(f.fin for f in frames)


async def _run_session(dial, script) -> Client:
    client = Client()
    session = portforward.SpdySession(dial, "sandbox-1", client.take)
    writer = asyncio.create_task(session.writer())
    try:
        await script(client, session)
    finally:
        await session.close()
        await writer
    return client


async def _until(check) -> None:
    for _ in range(2000):  # bounded: the session runs on this loop, nothing external to wait for
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def test_spdy_session_forwards_a_connection_and_half_closes_it():
    async def main() -> Client:
        ours, target = socket.socketpair()
        target.setblocking(False)
        dialled: list[int] = []

        async def dial(port: int):
            dialled.append(port)
            return await asyncio.open_connection(sock=ours)

        async def script(client: Client, session: portforward.SpdySession) -> None:
            wire, error_id, data_id = client.open_pair(8080, "0")
            session.receive(wire)
            session.receive(spdy.data(data_id, b"hello ") + spdy.data(data_id, b"pod", fin=True)
                            + spdy.ping(b"\0\0\0\3"))
            loop = asyncio.get_running_loop()
            got = b""
            while chunk := await loop.sock_recv(target, 100):  # EOF: the client's FIN reached the target
                got += chunk
            assert got == b"hello pod"
            await loop.sock_sendall(target, b"answer")
            target.close()
            await _until(lambda: client.data_on(error_id)[1])
            assert client.data_on(data_id) == (b"answer", True)
            assert client.data_on(error_id) == (b"", True)
            assert dialled == [8080]
        return await _run_session(dial, script)
    client = asyncio.run(main())
    replies = [f for f in client.received if isinstance(f, spdy.Control) and f.type == spdy.SYN_REPLY]
    assert [spdy.stream_id_of(f) for f in replies] == [1, 3]
    assert spdy.Control(spdy.PING, 0, b"\0\0\0\3") in client.received


def test_spdy_session_stops_reading_a_target_while_the_client_is_behind():
    async def main() -> None:
        ours, target = socket.socketpair()
        target.setblocking(False)
        released = asyncio.Event()

        async def slow_client(chunk: bytes) -> None:
            await released.wait()

        async def dial(port: int):
            return await asyncio.open_connection(sock=ours)

        session = portforward.SpdySession(dial, "sandbox-1", slow_client)
        writer = asyncio.create_task(session.writer())
        client = Client()
        wire, _, _ = client.open_pair(8080, "0")
        session.receive(wire)
        loop = asyncio.get_running_loop()
        flood = asyncio.create_task(loop.sock_sendall(target, b"x" * (16 * 1024 * 1024)))
        # the target's 16 MiB cannot all be sent: the session stopped reading it
        await _until(lambda: session.queued > portforward.MAX_QUEUED)
        for _ in range(50):
            await asyncio.sleep(0)
        assert not flood.done() and session.queued <= portforward.MAX_QUEUED + 1
        released.set()
        await asyncio.wait_for(flood, 60)  # once the client reads, all of it flows
        target.close()
        await session.close()
        await writer
    asyncio.run(main())


def test_spdy_session_reports_a_refused_port_on_the_error_stream():
    async def dial(port: int):
        raise portforward.DialError(f"failed to connect to localhost:{port}")

    async def script(client: Client, session: portforward.SpdySession) -> None:
        wire, error_id, data_id = client.open_pair(9999, "7")
        session.receive(wire)
        await _until(lambda: client.data_on(error_id)[1])
        assert client.data_on(error_id) == (b"error forwarding port 9999 to pod sandbox-1, uid : "
                                            b"failed to connect to localhost:9999", True)
        assert client.data_on(data_id) == (b"", True)
    asyncio.run(_run_session(dial, script))


def test_spdy_session_refuses_a_stream_without_a_port():
    async def dial(port: int):
        raise AssertionError("nothing should be dialled")

    async def script(client: Client, session: portforward.SpdySession) -> None:
        session.receive(spdy.syn_stream(1, client.codec.encode({"streamtype": "data"})))
        await _until(lambda: client.received)
        assert client.received == [spdy.Control(spdy.RST_STREAM, 0, struct.pack(">II", 1, spdy.RST_REFUSED_STREAM))]
    asyncio.run(_run_session(dial, script))


def test_bad_header_compression_is_a_protocol_error():
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderCodec().decode(zlib.compress(b"not a header block"))
