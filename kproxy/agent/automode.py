"""`--mode auto`: the best proxy mode the node's kernel offers, probed in the agent's namespace.

choose_mode(netns, config) tries ipvs, nftables, iptables, then userspace (PREFERENCE), each by
its backend's own probe(netns, config) (a mode whose code cannot be imported counts as
unavailable), and returns the first that works with one reason line per mode tried, so the agent
can log why it chose what it chose. When nothing works, not even userspace, it still returns
"userspace" (the fallback the issue asks for); the agent's usual probe then reports what is
missing in one line.
"""
from __future__ import annotations


from kproxy import modes
from kproxy.agent import backend as backends
from kproxy.agent.protocols import BackendConfig, Namespace

AUTO = "auto"
PREFERENCE = modes.auto_order()  # ModeSpec.auto_rank
FALLBACK = "userspace"


def choose_mode(netns: Namespace, config: BackendConfig | None = None,
                preference: tuple[str, ...] = PREFERENCE) -> tuple[str, list[str]]:
    """(mode, reasons): the first mode of `preference` whose probe passes in `netns`."""
    reasons: list[str] = []
    for mode in preference:
        try:
            cls = backends.get(mode)
        except backends.BackendUnavailable as exc:
            reasons.append(f"{mode}: not registered ({exc})")
            continue
        except ImportError as exc:
            reasons.append(f"{mode}: cannot be loaded ({exc})")
            continue
        try:
            cls.probe(netns, config)
        except backends.BackendUnavailable as exc:
            reasons.append(f"{mode}: unavailable ({exc})")
            continue
        except Exception as exc:  # a probe that crashes must not stop the search
            reasons.append(f"{mode}: probe failed ({type(exc).__name__}: {exc})")
            continue
        reasons.append(f"{mode}: available, chosen")
        return mode, reasons
    reasons.append(f"nothing available; falling back to {FALLBACK}")
    return FALLBACK, reasons
