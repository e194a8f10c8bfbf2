"""Request bodies: decoding JSON, YAML and protobuf with bounds, and doing it off the event loop.

Guarantees:
- `decode` refuses YAML whose aliases expand it far beyond its size (CVE-2019-11253, "billion
  laughs") with the rule upstream's YAML decoder applies, before any Python object is built;
  recursive aliases are refused too; every bad body is a 400 Status, never a traceback.
- `BodyDecoder` decodes large bodies in worker processes (a decoding thread would hold the GIL
  the event loop needs for seconds) and runs other per-body work, such as field checks, on a
  thread pool, so one big body never blocks other requests; at most `workers + max_waiting`
  bodies are worked on or wait at once, beyond that the answer is 429.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import re
from typing import Any, Callable

import yaml

from kproxy.api import status as st
from kproxy.apiserver import protobuf
from kproxy.apiserver.query import INT64_MAX, INT64_MIN

MAX_DEPTH = 100  # Kubernetes objects nest far less; deeper bodies are refused before any work
INLINE_BELOW = 64 * 1024  # smaller bodies decode on the loop: a thread hop costs more than they do

# go-yaml (v2.2.4+, used by kube-apiserver) refuses a document when more than 100 of its decode
# steps come from aliases and aliases make up more than a ratio of all steps: 0.99 up to 400,000
# steps, falling linearly to 0.10 at 4,000,000 steps.
ALIAS_MIN_COUNT = 100
ALIAS_MIN_DECODES = 1000
ALIAS_RATIO_LOW, ALIAS_RATIO_HIGH = 400_000, 4_000_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def allowed_alias_ratio(decodes: int) -> float:
    if decodes <= ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decodes - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


# where an alias token can start: at a line start, after white space or a flow indicator
_ALIAS_TOKEN = re.compile(r"(?:^|[\s\[{,])\*[^\s,\[\]{}]", re.MULTILINE)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def alias_expansion(root: yaml.Node) -> tuple[int, int]:
    """(decode steps, of which inside aliases) that building `root` would take with every alias
    expanded, computed without expanding: one walk in document order, where an anchored node is
    complete before any alias to it appears. A recursive alias raises ValueError."""
    expanded: dict[int, int] = {}  # id(node) -> steps to build its subtree, aliases expanded
    open_nodes: set[int] = set()
    in_aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in _children(node))
        elif key in expanded:  # a later reference: an alias
            in_aliases += expanded[key]
        elif key in open_nodes:
            raise ValueError("the document contains a recursive alias")
        elif isinstance(node, yaml.ScalarNode):
            expanded[key] = 1
        else:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(_children(node)))
    return expanded[id(root)], in_aliases


def load_yaml(text: str) -> Any:
    """One YAML document, safely constructed, refused when aliases expand it excessively."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        decodes, in_aliases = alias_expansion(node) if _ALIAS_TOKEN.search(text) else (0, 0)
        if (in_aliases > ALIAS_MIN_COUNT and decodes > ALIAS_MIN_DECODES
                and in_aliases / decodes > allowed_alias_ratio(decodes)):
            raise ValueError("the document contains excessive aliasing")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def refuse_unrepresentable(value: Any) -> None:
    """Refuses (400) a decoded body Kubernetes could not hold: nested deeper than MAX_DEPTH,
    a number outside int64 or not finite (YAML's .nan/.inf), a mapping key that is not a
    string or a value JSON has no form for (YAML allows both). One iterative pass."""
    stack = [(value, 1)]
    while stack:
        cur, depth = stack.pop()
        if isinstance(cur, (dict, list)):
            if depth > MAX_DEPTH:
                raise st.bad_request(f"the request body is nested deeper than {MAX_DEPTH} levels")
            if isinstance(cur, dict):
                if not all(isinstance(k, str) for k in cur):
                    raise st.bad_request("the request body has a mapping key that is not a string")
                cur = cur.values()
            stack.extend((v, depth + 1) for v in cur)
        elif isinstance(cur, bool) or cur is None or isinstance(cur, str):
            continue
        elif isinstance(cur, (int, float)):
            if cur != cur or not INT64_MIN <= cur <= INT64_MAX:
                raise st.bad_request(f"the request body holds the number {cur!r}, which is out of range "
                                     "(numbers must be finite and within int64)")
        else:  # YAML timestamps, binary, sets
            raise st.bad_request(f"the request body holds a {type(cur).__name__} value, which JSON cannot hold")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes) -> Any:
    """Strict JSON: NaN/Infinity refused (ValueError), deep nesting a RecursionError."""
    return json.loads(raw, parse_constant=_reject_constant)


def decode(raw: bytes, media_type: str, max_json_bytes: int | None = None) -> Any:
    """The body as a Python value; a malformed, over-aliased or too deeply nested body raises
    an ApiError (400, or 415 for undecodable protobuf), and so does (413) one whose JSON is over
    `max_json_bytes` (an object that could never be stored)."""
    body = _decode(raw, media_type)
    if max_json_bytes is not None and len(raw) * 4 > max_json_bytes:  # small bodies cannot be over
        try:
            size = len(json.dumps(body, separators=(",", ":")))
        except (TypeError, ValueError):
            return body  # not JSON-encodable: validation says why
        if size > max_json_bytes:
            raise st.too_large(f"the object is {size} bytes, over the limit of {max_json_bytes} bytes")
    return body


def _decode_in_worker(raw: bytes, media_type: str, max_json_bytes: int | None) -> tuple[bool, Any]:
    """decode() for a worker process: (True, body) or (False, the Status of the refusal), since
    an ApiError does not survive pickling."""
    try:
        return True, decode(raw, media_type, max_json_bytes)
    except st.ApiError as exc:
        return False, exc.status


def _load_yaml_or_json(raw: bytes) -> Any:
    """A YAML body; one that is JSON (what kubectl and the clients send as apply patches) is
    read by the much faster JSON decoder, with the same result."""
    if raw.lstrip()[:1] == b"{":
        try:
            return decode_json(raw)
        except ValueError:
            pass  # YAML's flow style, not JSON
    return load_yaml(raw.decode("utf-8"))


def _decode(raw: bytes, media_type: str) -> Any:
    if media_type == protobuf.MEDIA_TYPE:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufUnsupported as exc:
            raise st.unsupported_media_type(f"cannot decode the protobuf body: {exc}") from None
        except protobuf.ProtobufError as exc:
            raise st.bad_request(f"the protobuf body is malformed: {exc}") from None
    is_yaml = "yaml" in media_type
    try:
        body = _load_yaml_or_json(raw) if is_yaml else decode_json(raw)
    except RecursionError:
        raise st.bad_request(f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise st.bad_request(f"the request body is not valid {'YAML' if is_yaml else 'JSON'}: {msg}") from None
    refuse_unrepresentable(body)
    return body


class BodyDecoder:
    """Runs per-body work for large bodies on its own bounded pool (see the module doc)."""

    def __init__(self, workers: int = 2, max_waiting: int = 16, inline_below: int = INLINE_BELOW):
        self.workers = workers
        self.capacity = workers + max_waiting
        self.inline_below = inline_below
        self._threads = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="apiserver-body")
        self._processes: concurrent.futures.ProcessPoolExecutor | None = None  # started on first use
        self._busy = 0  # changed on the event loop only

    def _process_pool(self) -> concurrent.futures.Executor:
        if self._processes is None:
            # forkserver: never fork the apiserver itself, whose threads may hold locks
            self._processes = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("forkserver"))
        return self._processes

    async def _bounded(self, executor: concurrent.futures.Executor, fn: Callable[..., Any], *args: Any) -> Any:
        if self._busy >= self.capacity:
            raise st.too_many_requests("too many large request bodies are being decoded; retry later")
        self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except concurrent.futures.BrokenExecutor:
            self._processes = None  # a worker died (out of memory?): a new pool next time
            raise st.too_many_requests("the request body could not be decoded; retry later") from None
        finally:
            self._busy -= 1

    async def run(self, size: int, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), on the loop when `size` is small, else on the thread pool; 429 when full."""
        if size < self.inline_below:
            return fn(*args)
        return await self._bounded(self._threads, fn, *args)

    async def decode(self, raw: bytes, media_type: str, max_json_bytes: int | None = None) -> Any:
        """decode(), in a worker process when the body is large."""
        if len(raw) < self.inline_below:
            return decode(raw, media_type, max_json_bytes)
        ok, result = await self._bounded(self._process_pool(), _decode_in_worker, raw, media_type, max_json_bytes)
        if not ok:
            raise st.ApiError(result)
        return result

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)
