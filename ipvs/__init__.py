"""ipvs mode (installed as kproxy.ipvs): the kube-proxy IPVS model through generic netlink.

Modules, one responsibility each:
- model.py     frozen values: VirtualServer, RealServer, ServiceEntry, NetfilterPlan, IpvsRuleset
- render.py    pure ProxyState -> IpvsRuleset (virtual servers, dummy addresses, ipset members)
- netlink.py   the IPVS attribute tables, requests and a batching socket (on kproxy.netlink)
- ipset.py     ipset over nfnetlink (on kproxy.netlink)
- nfrules.py   pure ipset-restore and iptables-restore text for masquerade / NodePort / reject
- backend.py   IpvsBackend: the only module doing I/O (diff against the kernel's dump)
"""
