#!/usr/bin/env python3
"""Prints kproxy/apiserver/pbschema.py's MESSAGES entries for the given kinds and every message
they reach, read from checkouts of k8s.io/api and k8s.io/apimachinery: field names, numbers and
types from generated.proto, Go pointers and embedded structs from types.go. A maintainer's tool
for adding a kind; the apiserver never reads upstream files.

    scripts/pbschema_entries.py --api ~/src/api --apimachinery ~/src/apimachinery \\
        apps.DaemonSet apps.DaemonSetList batch.Job
"""
from __future__ import annotations

import argparse
import os
import re
import sys

SCALARS = ("string", "bytes", "int32", "int64", "bool")
# short package name -> (directory under its repository, protobuf package)
PACKAGES = {
    "core": ("api", "core/v1", "k8s.io.api.core.v1"),
    "apps": ("api", "apps/v1", "k8s.io.api.apps.v1"),
    "batch": ("api", "batch/v1", "k8s.io.api.batch.v1"),
    "rbac": ("api", "rbac/v1", "k8s.io.api.rbac.v1"),
    "authorization": ("api", "authorization/v1", "k8s.io.api.authorization.v1"),
    "authentication": ("api", "authentication/v1", "k8s.io.api.authentication.v1"),
    "discovery": ("api", "discovery/v1", "k8s.io.api.discovery.v1"),
    "coordination": ("api", "coordination/v1", "k8s.io.api.coordination.v1"),
    "meta": ("apimachinery", "pkg/apis/meta/v1", "k8s.io.apimachinery.pkg.apis.meta.v1"),
    "runtime": ("apimachinery", "pkg/runtime", "k8s.io.apimachinery.pkg.runtime"),
}
LEAF_PACKAGES = {"k8s.io.apimachinery.pkg.util.intstr": "intstr", "k8s.io.apimachinery.pkg.api.resource": "resource"}
LEAVES = {"meta.Time", "meta.MicroTime", "meta.FieldsV1", "intstr.IntOrString", "resource.Quantity",
          "runtime.RawExtension", "authorization.ExtraValue", "authentication.ExtraValue"}
FIELD = re.compile(r"(optional|repeated) (\S+) (\w+) = (\d+);")
MAP_FIELD = re.compile(r"map<string, (\S+)> (\w+) = (\d+);")
GO_POINTER = re.compile(r"\s*\w+\s+\*[\w.]+\s+`.*protobuf:\"(?:varint|bytes),(\d+),")
GO_EMBEDDED = re.compile(r"\s*[A-Z]\w*\s+`json:\"\" protobuf:\"bytes,(\d+),")


def _qualified(proto_type: str, here: str, packages: dict[str, str]) -> str:
    t = proto_type.lstrip(".")
    if t in SCALARS:
        return t
    if "." not in t:
        return f"{here}.{t}"
    package, name = t.rsplit(".", 1)
    return f"{packages.get(package, package)}.{name}"  # an unread package fails only if reached


def read_package(short: str, proto: str, types_go: str | None, packages: dict[str, str]):
    """(message -> [(name, number, repeated, map, type)], {(message, number)} pointers, embedded)."""
    messages: dict[str, list[tuple[str, int, bool, bool, str]]] = {}
    for m in re.finditer(r"^message (\w+) \{(.*?)^\}", proto, re.S | re.M):
        fields = []
        for line in (raw.strip() for raw in m.group(2).splitlines()):
            if not line or line.startswith("//"):
                continue
            if f := FIELD.match(line):
                fields.append((f[3], int(f[4]), f[1] == "repeated", False, _qualified(f[2], short, packages)))
            elif f := MAP_FIELD.match(line):
                fields.append((f[2], int(f[3]), False, True, _qualified(f[1], short, packages)))
            else:
                raise SystemExit(f"cannot read {short}.{m[1]}: {line}")
        messages[f"{short}.{m[1]}"] = fields
    pointers, embedded = set(), set()
    for s in re.finditer(r"^type (\w+) struct \{(.*?)^\}", types_go or "", re.S | re.M):
        for line in s[2].splitlines():
            if p := GO_POINTER.match(line):
                pointers.add((f"{short}.{s[1]}", int(p[1])))
            if e := GO_EMBEDDED.match(line):
                embedded.add((f"{short}.{s[1]}", int(e[1])))
    return messages, pointers, embedded


def entry(name: str, fields, pointers, embedded) -> str:
    parts = []
    for fname, number, repeated, is_map, kind in sorted(fields, key=lambda f: f[1]):
        prefix = ("+" if (name, number) in embedded else "") + ("[]" if repeated else "") + ("{}" if is_map else "")
        parts.append(f"{fname}={number}:{prefix}{kind}{'?' if (name, number) in pointers else ''}")
    lines, line = [], ""
    for p in parts:
        if line and len(line) + len(p) + 1 > 92:
            lines.append(line + " ")
            line = p
        else:
            line = f"{line} {p}" if line else p
    lines.append(line)
    return f'    "{name}": (\n' + "\n".join(f'        "{text}"' for text in lines) + "),"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", required=True, help="a checkout of k8s.io/api")
    parser.add_argument("--apimachinery", required=True, help="a checkout of k8s.io/apimachinery")
    parser.add_argument("kinds", nargs="+", help="messages to start from, e.g. apps.DaemonSet")
    args = parser.parse_args(argv)
    repos = {"api": args.api, "apimachinery": args.apimachinery}
    proto_packages = {pkg: short for short, (_, _, pkg) in PACKAGES.items()} | LEAF_PACKAGES
    messages, pointers, embedded = {}, set(), set()
    for short, (repo, directory, _) in PACKAGES.items():
        base = os.path.join(repos[repo], directory)
        if not os.path.exists(os.path.join(base, "generated.proto")):
            continue
        with open(os.path.join(base, "generated.proto")) as f:
            proto = f.read()
        types_path = os.path.join(base, "types.go")
        types_go = open(types_path).read() if os.path.exists(types_path) else None
        m, p, e = read_package(short, proto, types_go, proto_packages)
        messages.update(m)
        pointers |= p
        embedded |= e
    seen: list[str] = []

    def walk(name: str) -> None:
        if name in seen or name in LEAVES:
            return
        if name not in messages:
            raise SystemExit(f"{name} is in a package this tool does not read: add it to PACKAGES")
        seen.append(name)
        for field in messages[name]:
            if field[4] not in SCALARS:
                walk(field[4])

    for kind in args.kinds:
        walk(kind)
    print("\n".join(entry(name, messages[name], pointers, embedded) for name in seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
