"""Label and field selectors with Kubernetes' grammar and matching semantics.

Label selectors follow k8s.io/apimachinery/pkg/labels (Parse): comma-separated requirements
`key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>3`,
`key<3`. The empty string selects everything. `!=` and `notin` also match objects that lack
the label. Field selectors follow k8s.io/apimachinery/pkg/fields: `path=v`, `path==v`,
`path!=v` over a small per-resource set of supported paths.

Parsed selectors are frozen; `str()` gives the canonical text that parses back to an equal
selector (requirements sorted by key, set values sorted).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kproxy.api.names import check_label_value, check_qualified_name

EXISTS = "exists"
DOES_NOT_EXIST = "!"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
GREATER_THAN = "gt"
LESS_THAN = "lt"


class SelectorError(ValueError):
    """A selector string or object that does not parse or validate; the message says why."""


@dataclass(frozen=True)
class Requirement:
    """One label requirement; `values` is sorted and de-duplicated."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        present = self.key in labels
        if op == EXISTS:
            return present
        if op == DOES_NOT_EXIST:
            return not present
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            return present and labels[self.key] in self.values
        if op in (NOT_EQUALS, NOT_IN):
            return not present or labels[self.key] not in self.values
        if op in (GREATER_THAN, LESS_THAN):
            have = _go_int(labels[self.key]) if present else None
            if have is None:
                return False
            want = int(self.values[0])
            return have > want if op == GREATER_THAN else have < want
        raise AssertionError(f"unknown operator {op}")

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({','.join(self.values)})"
        sym = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{sym}{self.values[0]}"


_INT_RE = re.compile(r"[+-]?[0-9]+")


def _go_int(text: str) -> int | None:
    """The int64 `text` denotes as Go's strconv.ParseInt reads it (no spaces or underscores)."""
    if not _INT_RE.fullmatch(text):
        return None
    n = int(text)
    return n if -2**63 <= n < 2**63 else None


def new_requirement(key: str, operator: str, values: list[str] | tuple[str, ...] = ()) -> Requirement:
    """A validated Requirement (labels.NewRequirement): key a qualified name, values label values."""
    errs = check_qualified_name(key)
    if errs:
        raise SelectorError(f'key: Invalid value: "{key}": {"; ".join(errs)}')
    values = tuple(values)
    if operator in (IN, NOT_IN):
        if not values:
            raise SelectorError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            raise SelectorError("values: Invalid value: exact-match compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            raise SelectorError("values: Invalid value: values set must be empty for exists and does not exist")
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            raise SelectorError("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required")
        if _go_int(values[0]) is None:
            raise SelectorError(f"values[0]: Invalid value: {values[0]!r}: "
                                "for 'Gt', 'Lt' operators, the value must be an integer")
    else:
        raise SelectorError(f'operator: Unsupported value: "{operator}"')
    for v in values:
        verrs = check_label_value(v)
        if verrs:
            raise SelectorError(f'values[0][{key}]: Invalid value: "{v}": {"; ".join(verrs)}')
    return Requirement(key, operator, tuple(sorted(set(values))))


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; no requirements selects everything, unless `nothing`."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False  # the selector of a nil LabelSelector object: matches no object

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """True when this selects every object."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> "LabelSelector":
        """The selector `k1=v1,k2=v2` of a plain map, e.g. a Service's spec.selector.
        An empty or missing map gives the select-everything selector; callers that treat a
        selector-less Service as selecting nothing check for that themselves."""
        if labels is not None and not isinstance(labels, Mapping):
            raise SelectorError("a label map must be an object")
        reqs = [new_requirement(k, EQUALS, [_label_str(v)]) for k, v in (labels or {}).items()]
        return cls(_sorted(reqs))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "LabelSelector":
        """The selector of a metav1.LabelSelector object ({matchLabels, matchExpressions}).
        None selects nothing, {} selects everything (LabelSelectorAsSelector)."""
        if d is None:
            return cls(nothing=True)
        if not isinstance(d, Mapping):
            raise SelectorError("a label selector must be an object")
        unknown = set(d) - {"matchLabels", "matchExpressions"}
        if unknown:
            raise SelectorError(f"unknown field(s) in label selector: {', '.join(sorted(unknown))}")
        reqs = list(cls.from_labels(d.get("matchLabels") or {}).requirements)
        exprs = d.get("matchExpressions") or []
        if not isinstance(exprs, list):
            raise SelectorError("matchExpressions must be a list")
        ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
        for i, e in enumerate(exprs):
            if not isinstance(e, Mapping):
                raise SelectorError(f"matchExpressions[{i}] must be an object")
            op = e.get("operator")
            if op not in ops:
                raise SelectorError(f'matchExpressions[{i}].operator: Unsupported value: "{op}": '
                                    'supported values: "DoesNotExist", "Exists", "In", "NotIn"')
            values = e.get("values") or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise SelectorError(f"matchExpressions[{i}].values must be a list of strings")
            reqs.append(new_requirement(str(e.get("key", "")), ops[op], values))
        return cls(_sorted(reqs))


def of_workload(obj: Mapping[str, Any]) -> LabelSelector:
    """The selector of a workload's spec.selector: a metav1.LabelSelector, except for a v1
    ReplicationController, whose selector is a plain label map (an empty one selects
    nothing: validation never lets one be stored). Raises SelectorError."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    raw = spec.get("selector")
    if obj.get("kind") == "ReplicationController":
        return LabelSelector.from_labels(raw) if raw else LabelSelector(nothing=True)
    return LabelSelector.from_dict(raw)


def _label_str(v: Any) -> str:
    if not isinstance(v, str):
        raise SelectorError(f"label value {v!r} must be a string")
    return v


def _sorted(reqs: list[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


# --- label selector lexer/parser -------------------------------------------------------------

_SPECIAL = "!=(),<>"


def _tokenize(s: str) -> list[tuple[str, str]]:
    """Tokens as (kind, text); kinds: id, in, notin, !, =, ==, !=, (, ), ",", >, <."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
            continue
        if c in _SPECIAL:
            two = s[i:i + 2]
            if two in ("==", "!="):
                out.append((two, two))
                i += 2
            else:
                out.append((c, c))
                i += 1
            continue
        j = i
        while j < n and not s[j].isspace() and s[j] not in _SPECIAL:
            j += 1
        word = s[i:j]
        out.append((word if word in (IN, NOT_IN) else "id", word))
        i = j
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.pos = 0

    def peek(self) -> str:
        return self.toks[self.pos][0] if self.pos < len(self.toks) else "end"

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.pos] if self.pos < len(self.toks) else ("end", "")
        self.pos += 1
        return tok

    def error(self, what: str) -> SelectorError:
        return SelectorError(f"unable to parse requirement: {what} in selector {self.text!r}")

    def parse(self) -> LabelSelector:
        reqs: list[Requirement] = []
        if self.peek() == "end":
            return LabelSelector()
        while True:
            reqs.append(self.requirement())
            kind = self.take()[0]
            if kind == "end":
                break
            if kind != ",":
                raise self.error(f"found '{self.toks[self.pos - 1][1]}', expected: ',' or 'end of string'")
            if self.peek() == "end":
                raise self.error("found end of string after ',', expected: identifier")
        return LabelSelector(_sorted(reqs))

    def requirement(self) -> Requirement:
        negate = False
        if self.peek() == "!":
            self.take()
            negate = True
        kind, key = self.take()
        if kind != "id":
            shown = key or "end of string"
            raise self.error(f"found '{shown}', expected: identifier")
        if negate:
            if self.peek() not in (",", "end"):
                raise self.error(f"found '{self.toks[self.pos][1]}', expected: ',' or 'end of string'")
            return new_requirement(key, DOES_NOT_EXIST)
        nxt = self.peek()
        if nxt in (",", "end"):
            return new_requirement(key, EXISTS)
        op_kind, op_text = self.take()
        if op_kind in ("=", "==", "!="):
            return new_requirement(key, op_kind, [self.exact_value()])
        if op_kind in (">", "<"):
            return new_requirement(key, GREATER_THAN if op_kind == ">" else LESS_THAN, [self.exact_value()])
        if op_kind in (IN, NOT_IN):
            return new_requirement(key, op_kind, self.value_set())
        raise self.error(f"found '{op_text}', expected: in, notin, =, ==, !=, gt, lt")

    def exact_value(self) -> str:
        if self.peek() in (",", "end"):
            return ""
        kind, text = self.take()
        if kind in ("id", IN, NOT_IN):
            return text
        raise self.error(f"found '{text}', expected: identifier")

    def value_set(self) -> list[str]:
        kind, text = self.take()
        if kind != "(":
            raise self.error(f"found '{text or 'end of string'}', expected: '('")
        values: list[str] = []
        if self.peek() == ")":
            self.take()
            return [""]  # `in ()` is the set holding the empty value, as labels.Parse reads it
        while True:
            if self.peek() in (",", ")"):
                values.append("")  # `in (a,)` admits the empty value, as Kubernetes does
            else:
                kind, text = self.take()
                if kind not in ("id", IN, NOT_IN):
                    raise self.error(f"found '{text or 'end of string'}', expected: ',', ')' or identifier")
                values.append(text)
            kind, text = self.take()
            if kind == ")":
                return values
            if kind != ",":
                raise self.error(f"found '{text or 'end of string'}', expected: ',' or ')'")


def parse_label_selector(s: str) -> LabelSelector:
    """Parse a labelSelector query string; raises SelectorError with a readable reason."""
    if not isinstance(s, str):
        raise SelectorError("label selector must be a string")
    return _Parser(s).parse()


# --- field selectors -------------------------------------------------------------------------

def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _path(*path: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda obj: _text(_get(obj, *path))


def _pod_ips(obj: Mapping[str, Any]) -> str:
    ips = _get(obj, "status", "podIPs") or []
    return ",".join(_text(p.get("ip")) for p in ips if isinstance(p, Mapping))


_COMMON_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

# Extra fields per kind, as each kind's registry GetAttrs/field label conversion supports.
_KIND_FIELDS: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: _text(bool(_get(o, "spec", "hostNetwork"))),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.podIPs": _pod_ips,
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "Service": {
        "spec.clusterIP": _path("spec", "clusterIP"),
        "spec.type": _path("spec", "type"),
    },
    "Namespace": {"status.phase": _path("status", "phase")},
    "Node": {"spec.unschedulable": lambda o: _text(bool(_get(o, "spec", "unschedulable")))},
    "Secret": {"type": _path("type")},
    "Event": {
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": lambda o: _text(_get(o, "source", "component") or o.get("reportingComponent")),
        "type": _path("type"),
    },
}


def supported_fields(resource: Any) -> tuple[str, ...]:
    """Field paths a field selector may use for `resource` (a kproxy.api.resources.Resource)."""
    return tuple(_COMMON_FIELDS) + tuple(_KIND_FIELDS.get(getattr(resource, "kind", ""), {}))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" or "!=" ("==" is normalised to "=")
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements over one resource kind."""

    requirements: tuple[FieldRequirement, ...]
    kind: str = ""

    def matches(self, obj: Mapping[str, Any]) -> bool:
        getters = {**_COMMON_FIELDS, **_KIND_FIELDS.get(self.kind, {})}
        for r in self.requirements:
            have = getters[r.field](obj)
            if (have == r.value) != (r.operator == "="):
                return False
        return True

    def empty(self) -> bool:
        return not self.requirements

    def exact(self, field: str) -> str | None:
        """The value `field` must equal, if the selector pins it (e.g. metadata.name=x)."""
        for r in self.requirements:
            if r.field == field and r.operator == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _escape_field_value(v: str) -> str:
    out = []
    for c in v:
        if c in "\\,=!":
            out.append("\\")
        out.append(c)
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    """Split on unescaped commas, keeping escapes for the term parser."""
    terms, cur, i = [], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    terms.append("".join(cur))
    return terms


def _parse_term(term: str) -> tuple[str, str, str]:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                lhs, rhs = term[:i], term[i + len(op):]
                return lhs, ("=" if op == "==" else op), _unescape(rhs, term)
        i += 1
    raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")


def _unescape(v: str, term: str) -> str:
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\":
            if i + 1 >= len(v) or v[i + 1] not in "\\,=!":
                raise SelectorError(f"invalid field selector: '{term}': invalid escape sequence")
            out.append(v[i + 1])
            i += 2
            continue
        if c in ",=":
            raise SelectorError(f"invalid field selector: '{term}': unescaped '{c}' in value")
        out.append(c)
        i += 1
    return "".join(out)


def parse_field_selector(s: str, resource: Any) -> FieldSelector:
    """Parse a fieldSelector for `resource`; unsupported paths raise SelectorError
    'field label not supported: X' (the message kube-apiserver answers with)."""
    if not isinstance(s, str):
        raise SelectorError("field selector must be a string")
    kind = getattr(resource, "kind", "")
    allowed = supported_fields(resource)
    reqs = []
    if s.strip() == "":
        return FieldSelector((), kind)
    for term in _split_terms(s):
        if term == "":
            continue
        field, op, value = _parse_term(term)
        field = field.strip()
        if field not in allowed:
            raise SelectorError(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, op, value))
    return FieldSelector(tuple(reqs), kind)
