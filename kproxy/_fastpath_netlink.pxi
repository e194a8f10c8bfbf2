# Netlink message encoding (nftables backend): included into _fastpath.pyx so one extension
# module holds the whole fast path. Owned by the nftables backend; its pure-Python twin is
# kproxy/nftables/wire.py (encode_message, encode_elements), and both give identical bytes
# (tests/unit/test_nft_wire.py).
#
# An attribute tree is a tuple of (type, value) pairs, value bytes (a scalar) or a nested tree.

from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef int _NLA_F_NESTED = 0x8000
cdef int _NLM_F_REQUEST = 0x1
cdef int _SUBSYS_NFTABLES = 10


cdef class _Buf:
    """A growable byte buffer with little helpers for netlink headers."""
    cdef bytearray data
    cdef Py_ssize_t n

    def __cinit__(self):
        self.data = bytearray(4096)
        self.n = 0

    cdef inline void reserve(self, Py_ssize_t extra):
        cdef Py_ssize_t size = len(self.data)
        if self.n + extra > size:
            while self.n + extra > size:
                size *= 2
            self.data.extend(b"\0" * (size - len(self.data)))

    cdef inline void put_u16_at(self, Py_ssize_t pos, unsigned short v):
        cdef unsigned char* p = <unsigned char*>(<char*>self.data) + pos
        memcpy(p, &v, 2)

    cdef inline void put_u32_at(self, Py_ssize_t pos, unsigned int v):
        cdef unsigned char* p = <unsigned char*>(<char*>self.data) + pos
        memcpy(p, &v, 4)

    cdef inline void put_bytes(self, bytes value):
        cdef Py_ssize_t length = PyBytes_GET_SIZE(value)
        self.reserve(length)
        memcpy(<char*>self.data + self.n, PyBytes_AS_STRING(value), length)
        self.n += length

    cdef inline void zeros(self, Py_ssize_t count):
        cdef Py_ssize_t i
        self.reserve(count)
        for i in range(count):
            (<char*>self.data)[self.n + i] = 0
        self.n += count

    cdef bytes take(self, Py_ssize_t start):
        return PyBytes_FromStringAndSize(<char*>self.data + start, self.n - start)


cdef void _put_attrs(_Buf out, tuple attrs) except *:
    cdef Py_ssize_t start, length
    cdef int kind
    for item in attrs:
        kind = item[0]
        value = item[1]
        start = out.n
        out.zeros(4)
        if isinstance(value, bytes):
            out.put_bytes(<bytes>value)
            length = out.n - start
            out.put_u16_at(start, <unsigned short>length)
            out.put_u16_at(start + 2, <unsigned short>kind)
        else:
            _put_attrs(out, <tuple>value)
            length = out.n - start
            out.put_u16_at(start, <unsigned short>length)
            out.put_u16_at(start + 2, <unsigned short>(kind | _NLA_F_NESTED))
        if length > 0xFFFF:
            raise ValueError(f"netlink attribute {kind} is {length} bytes (limit 65535)")
        out.zeros((4 - (length & 3)) & 3)  # C division semantics: no negative modulo


cdef void _put_message(_Buf out, int msg_type, int flags, unsigned int seq, int family, tuple attrs) except *:
    cdef Py_ssize_t start = out.n
    out.zeros(20)
    _put_attrs(out, attrs)
    out.put_u32_at(start, <unsigned int>(out.n - start))
    out.put_u16_at(start + 4, <unsigned short>((_SUBSYS_NFTABLES << 8) | msg_type))
    out.put_u16_at(start + 6, <unsigned short>(_NLM_F_REQUEST | flags))
    out.put_u32_at(start + 8, seq)
    (<char*>out.data)[start + 16] = <char>family


def nft_encode_message(int msg_type, int flags, unsigned int seq, int family, tuple attrs):
    """Twin of kproxy.nftables.wire.encode_message."""
    cdef _Buf out = _Buf()
    _put_message(out, msg_type, flags, seq, family, attrs)
    return out.take(0)


cdef bytes _be32(int v):
    return bytes(((v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))


def nft_encode_elements(int msg_type, int flags, unsigned int seq, int family, str table, str set_name,
                        elements, int per_message=500):
    """Twin of kproxy.nftables.wire.encode_elements."""
    cdef list out = []
    cdef _Buf buf
    cdef Py_ssize_t n = len(elements), i, j, start, lstart, length
    cdef tuple head = ((1, table.encode() + b"\0"), (2, set_name.encode() + b"\0"))
    if n == 0:
        return [nft_encode_message(msg_type, flags, seq, family, head)]
    cdef dict verdicts = {}
    for i in range(0, n, per_message):
        buf = _Buf()
        start = buf.n
        buf.zeros(20)
        _put_attrs(buf, head)
        lstart = buf.n
        buf.zeros(4)  # NFTA_SET_ELEM_LIST_ELEMENTS
        for j in range(i, min(i + per_message, n)):
            key, code, extra = elements[j]
            if code is None:
                if extra is None:
                    elem = ((1, ((1, key),)),)
                else:  # a data map element: NFTA_SET_ELEM_DATA > NFTA_DATA_VALUE
                    elem = ((1, ((1, key),)), (2, ((1, extra),)))
            else:
                vd = ((1, _be32(code)),) if extra is None else ((1, _be32(code)), (2, extra.encode() + b"\0"))
                elem = ((1, ((1, key),)), (2, ((2, vd),)))
            _put_attrs(buf, ((1, elem),))
        length = buf.n - lstart
        if length > 0xFFFF:
            raise ValueError(f"netlink attribute 3 is {length} bytes (limit 65535)")
        buf.put_u16_at(lstart, <unsigned short>length)
        buf.put_u16_at(lstart + 2, <unsigned short>(3 | _NLA_F_NESTED))
        buf.put_u32_at(start, <unsigned int>(buf.n - start))
        buf.put_u16_at(start + 4, <unsigned short>((_SUBSYS_NFTABLES << 8) | msg_type))
        buf.put_u16_at(start + 6, <unsigned short>(_NLM_F_REQUEST | flags))
        buf.put_u32_at(start + 8, seq)
        (<char*>buf.data)[start + 16] = <char>family
        out.append(buf.take(0))
        seq += 1
    return out
