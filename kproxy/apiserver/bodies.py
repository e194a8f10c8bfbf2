"""Request bodies: decoding JSON, YAML and protobuf with bounds, and doing it off the event loop.

Guarantees:
- `decode` refuses YAML whose aliases expand it far beyond its size (CVE-2019-11253, "billion
  laughs") with the rule upstream's YAML decoder applies, before any Python object is built;
  recursive aliases are refused too; every bad body is a 400 Status, never a traceback.
- `BodyDecoder` runs the decoding of large bodies (and other per-body work, such as field
  checks) on a small pool of its own, so one big body never blocks other requests; at most
  `workers + max_waiting` bodies are decoded or wait at once, beyond that the answer is 429.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any, Callable

import yaml

from kproxy.api import status as st
from kproxy.apiserver import protobuf

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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def alias_expansion(root: yaml.Node) -> tuple[int, int]:
    """(decode steps, of which inside aliases) that building `root` would take with every alias
    expanded, computed without expanding (each distinct node is visited once). A recursive
    alias raises ValueError."""
    expanded: dict[int, int] = {}  # id(node) -> steps to build its subtree, aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in _children(node))
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise ValueError("the document contains a recursive alias")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ValueError("the document contains a recursive alias")
            if id(child) not in expanded:
                stack.append((child, False))
    # the first occurrence of a node is its definition; every later one is an alias
    seen: set[int] = set()
    in_aliases = 0
    walk = [root]
    while walk:
        node = walk.pop()
        if id(node) in seen:
            in_aliases += expanded[id(node)]
            continue
        seen.add(id(node))
        walk.extend(reversed(_children(node)))
    return expanded[id(root)], in_aliases


def load_yaml(text: str) -> Any:
    """One YAML document, safely constructed, refused when aliases expand it excessively."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        decodes, in_aliases = alias_expansion(node)
        if (in_aliases > ALIAS_MIN_COUNT and decodes > ALIAS_MIN_DECODES
                and in_aliases / decodes > allowed_alias_ratio(decodes)):
            raise ValueError("the document contains excessive aliasing")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def nesting_depth(value: Any) -> int:
    """How deeply lists/objects nest in a decoded JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        cur, depth = stack.pop()
        if isinstance(cur, dict):
            cur = list(cur.values())
        if isinstance(cur, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in cur if isinstance(v, (dict, list)))
    return deepest


def decode(raw: bytes, media_type: str) -> Any:
    """The body as a Python value; a malformed, over-aliased or too deeply nested body raises
    an ApiError (400, or 415 for undecodable protobuf)."""
    if media_type == protobuf.MEDIA_TYPE:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise st.unsupported_media_type(f"cannot decode the protobuf body: {exc}") from None
    is_yaml = "yaml" in media_type
    try:
        body = load_yaml(raw.decode("utf-8")) if is_yaml else json.loads(raw)
    except RecursionError:
        raise st.bad_request(f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise st.bad_request(f"the request body is not valid {'YAML' if is_yaml else 'JSON'}: {msg}") from None
    if nesting_depth(body) > MAX_DEPTH:
        raise st.bad_request(f"the request body is nested deeper than {MAX_DEPTH} levels")
    return body


class BodyDecoder:
    """Runs per-body work for large bodies on its own bounded pool (see the module doc)."""

    def __init__(self, workers: int = 2, max_waiting: int = 16, inline_below: int = INLINE_BELOW):
        self.capacity = workers + max_waiting
        self.inline_below = inline_below
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="apiserver-decode")
        self._busy = 0  # changed on the event loop only

    async def run(self, size: int, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), on the loop when `size` is small, else on the pool; 429 when it is full."""
        if size < self.inline_below:
            return fn(*args)
        if self._busy >= self.capacity:
            raise st.too_many_requests("too many large request bodies are being decoded; retry later")
        self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._busy -= 1

    async def decode(self, raw: bytes, media_type: str) -> Any:
        return await self.run(len(raw), decode, raw, media_type)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
