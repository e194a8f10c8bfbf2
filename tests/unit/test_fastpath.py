"""The fast path: SipHash-2-4 against the reference vectors, the compiled and pure-Python twins
giving identical results, and Maglev's guarantees (weighted shares, minimal disruption)."""
from __future__ import annotations

from array import array
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy import fastpath as fp

try:
    from kproxy import _fastpath as ext
except ImportError:  # pragma: no cover - the twin tests need the extension
    ext = None

needs_ext = pytest.mark.skipif(ext is None, reason="kproxy._fastpath extension is not built "
                                                   "(setup.py build_ext --inplace)")

# SipHash-2-4 reference vectors (siphash24.c of the SipHash paper): key 00..0f, message
# 00 01 .. (n-1) for n = 0..63; a sample of them.
REFERENCE = {
    0: 0x726FDB47DD0E0E31, 1: 0x74F839C593DC67FD, 2: 0x0D6C8009D9A94F5A, 3: 0x85676696D7FB7E2D,
    7: 0xAB0200F58B01D137, 8: 0x93F5F5799A932462, 9: 0x9E0082DF0BA9E4B0, 15: 0xA129CA6149BE45E5,
    16: 0x3F2ACC7F57C29BDB, 31: 0x32D892FAD841C342, 32: 0x7127512F72F27CCE,
    63: 0x958A324CEB064572,
}
KEY = bytes(range(16))
SMALL_PRIME = 251


@pytest.mark.parametrize("length", sorted(REFERENCE))
@pytest.mark.parametrize("impl", ["twin", "ext"])
def test_siphash_matches_reference_vectors(length, impl):
    if impl == "ext" and ext is None:
        pytest.skip("kproxy._fastpath extension is not built")
    fn = fp.py_siphash24 if impl == "twin" else ext.siphash24
    assert fn(KEY, bytes(range(length))) == REFERENCE[length]


def test_siphash_rejects_a_wrong_key_length():
    with pytest.raises(ValueError, match="16 bytes"):
        fp.py_siphash24(b"short", b"x")
    if ext is not None:
        with pytest.raises(ValueError, match="16 bytes"):
            ext.siphash24(b"short", b"x")


@needs_ext
@settings(deadline=None)  # the pure-Python twin is slow on a loaded machine; timing decides nothing
@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=80))
def test_twins_agree_on_siphash(key, data):
    assert ext.siphash24(key, data) == fp.py_siphash24(key, data)


@needs_ext
@settings(deadline=None)
@given(key=st.binary(min_size=16, max_size=16), record_len=st.integers(1, 40), count=st.integers(0, 20),
       data=st.randoms())
def test_twins_agree_on_record_hashes_and_lookups(key, record_len, count, data):
    records = bytes(data.getrandbits(8) for _ in range(record_len * count))
    hashes = ext.hash_records(key, records, record_len)
    assert hashes == fp.py_hash_records(key, records, record_len)
    assert list(hashes) == [fp.py_siphash24(key, records[i:i + record_len])
                            for i in range(0, len(records), record_len)]
    table = array("i", [data.randrange(5) for _ in range(SMALL_PRIME)])
    assert ext.lookup_hashes(table, hashes) == fp.py_lookup_hashes(table, hashes)
    assert ext.lookup_records(table, key, records, record_len) == fp.py_lookup_records(
        table, key, records, record_len)


endpoint_names = st.lists(st.from_regex(r"10\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{2,5}", fullmatch=True),
                          min_size=1, max_size=12, unique=True)


@needs_ext
@settings(max_examples=60, deadline=None)
@given(names=endpoint_names, data=st.data(), size=st.sampled_from([2, 3, 13, 251, 1021]))
def test_twins_agree_on_maglev_tables(names, data, size):
    weights = data.draw(st.lists(st.integers(0, 5), min_size=len(names), max_size=len(names)))
    if sum(weights) == 0:
        weights[0] = 1
    encoded = [n.encode() for n in names]
    args = (encoded, weights, size, fp.OFFSET_KEY, fp.SKIP_KEY)
    assert ext.maglev_table(*args) == fp.py_maglev_table(*args)


@needs_ext
def test_twins_agree_on_a_full_size_table():
    names = [f"10.244.{i // 250}.{i % 250}:8080".encode() for i in range(40)]
    weights = [1 + i % 3 for i in range(40)]
    args = (names, weights, fp.DEFAULT_TABLE_SIZE, fp.OFFSET_KEY, fp.SKIP_KEY)
    assert ext.maglev_table(*args) == fp.py_maglev_table(*args)


@pytest.mark.parametrize("fn", [fp.py_maglev_table] + ([ext.maglev_table] if ext else []))
def test_maglev_rejects_bad_weights_and_sizes(fn):
    with pytest.raises(ValueError, match="weights"):
        fn([b"a", b"b"], [0, 0], 13, fp.OFFSET_KEY, fp.SKIP_KEY)
    with pytest.raises(ValueError, match="weights"):
        fn([b"a"], [-1], 13, fp.OFFSET_KEY, fp.SKIP_KEY)
    with pytest.raises(ValueError, match="length"):
        fn([b"a"], [1, 1], 13, fp.OFFSET_KEY, fp.SKIP_KEY)
    with pytest.raises(ValueError, match="at least 2"):
        fn([b"a"], [1], 1, fp.OFFSET_KEY, fp.SKIP_KEY)
    assert list(fn([], [], 5, fp.OFFSET_KEY, fp.SKIP_KEY)) == [-1] * 5


@settings(max_examples=40, deadline=None)
@given(names=endpoint_names, data=st.data())
def test_every_endpoint_gets_its_weighted_share(names, data):
    weights = data.draw(st.lists(st.integers(0, 4), min_size=len(names), max_size=len(names)))
    if sum(weights) == 0:
        weights[-1] = 2
    size = 1021
    table = fp.maglev_table([n.encode() for n in names], weights, size, fp.OFFSET_KEY, fp.SKIP_KEY)
    counts = Counter(table)
    assert -1 not in counts  # every entry is taken
    total = sum(weights)
    for i, w in enumerate(weights):
        expected = size * w / total
        assert abs(counts.get(i, 0) - expected) <= fp.maglev_share_bound(w), (i, w, counts.get(i, 0), expected)


@pytest.mark.parametrize("n", [3, 10, 50])
def test_removing_one_of_n_endpoints_remaps_about_one_nth(n):
    names = [f"10.244.1.{i}:8080" for i in range(n)]
    before = fp.Maglev(names)
    removed = names[n // 2]
    after = fp.Maglev([x for x in names if x != removed])
    moved = sum(1 for a, b in zip(before.table, after.table) if before.names[a] != after.names[b])
    owned_by_removed = sum(1 for a in before.table if before.names[a] == removed)
    # every entry of the removed endpoint must move; Maglev moves only a few more (the paper's
    # "minimal disruption"): well under twice the unavoidable share.
    assert moved >= owned_by_removed
    assert moved <= 1.5 * before.size / n, (moved, before.size / n)


def test_maglev_pick_is_stable_and_skips_zero_weights():
    m = fp.Maglev({"a:1": 1, "b:1": 0, "c:1": 2})
    assert m.names == ("a:1", "c:1")
    keys = [fp.flow_record("10.0.0.1", p, "10.96.0.1", 80, 6) for p in range(2000)]
    picks = [m.pick(k) for k in keys]
    assert set(picks) == {"a:1", "c:1"}
    assert picks == [m.pick(k) for k in keys]
    share_c = picks.count("c:1") / len(picks)
    assert 0.55 < share_c < 0.78  # weight 2 of 3, with 2000 samples
    assert fp.Maglev([]).pick(keys[0]) is None and fp.Maglev([]).index(keys[0]) == -1


def test_flow_and_client_records_are_fixed_size():
    assert len(fp.flow_record("10.0.0.1", 1, "10.96.0.1", 80, 17)) == fp.FLOW_RECORD_LEN
    assert len(fp.flow_record("fd00::1", 1, "fd00::2", 80, 6)) == fp.FLOW_RECORD_LEN_V6
    assert fp.client_record("10.0.0.1") != fp.client_record("10.0.0.2")


def test_implementation_names_the_one_in_use():
    assert fp.IMPLEMENTATION in ("cython", "python")
    assert (fp.maglev_table is fp.py_maglev_table) == (fp.IMPLEMENTATION == "python")


def test_without_the_extension_the_twin_is_used():
    """A blocked extension import (as in a KPROXY_NO_CYTHON=1 build) falls back to the twin."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'kproxy._fastpath': raise ImportError('blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from kproxy import fastpath as f\n"
            "print(f.IMPLEMENTATION, f.Maglev(['a:1', 'b:2']).pick(b'x'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["python", fp.Maglev(["a:1", "b:2"]).pick(b"x")]


@settings(deadline=None)
@given(text=st.text(max_size=150))
def test_chain_hash16_is_base32_of_sha256(text):
    import base64
    import hashlib

    want = base64.b32encode(hashlib.sha256(text.encode()).digest())[:16].decode()
    assert fp.py_chain_hash16(text) == want
    if ext is not None:
        assert ext.chain_hash16(text) == want


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300])
def test_chain_hash16_at_sha256_padding_boundaries(length):
    text = "k" * length
    assert fp.chain_hash16(text) == fp.py_chain_hash16(text)
