"""Userspace proxy mode (`kproxy agent --mode userspace`): the fallback when the kernel lacks a
feature the other modes need; only a few iptables redirect rules are kernel state.

Modules, from pure to I/O:
- plan.py     ProxyState -> Plan (listeners and their endpoints), Plan + ports -> iptables Ruleset
- core.py     sans-IO decisions: endpoint choice (Maglev or round robin), retry order, UDP flows
- proxy.py    asyncio/uvloop driver: TCP relay with backpressure, UDP flows, listener lifecycle
- daemon.py   the per-namespace proxy process that owns the listeners (survives agent restarts)
- control.py  the agent's client for that process (starts it when needed)
- backend.py  UserspaceBackend: render / apply / inspect / cleanup
"""
