"""kproxy's one netlink layer, shared by nf_tables (kproxy/nftables), ipset and IPVS
(kproxy/ipvs):

- message: header structs, the attribute encoder/decoders, message iteration, error payloads
  (pure: bytes in, values out);
- attrs: declarative attribute tables (name, number, type) that encode a dict of values into
  an attribute tree and decode received attributes back by name;
- socket: NetlinkSocket (sequence numbers, buffers, answers, the ack/error loop) and
  NetlinkError (errno + the request that failed);
- conntrack: ctnetlink (list and delete entries) for the agent's conntrack cleanup.

The protocol clients build on these: nf_tables (kproxy/nftables/nlsocket.py, wire.py), ipset
(kproxy/ipvs/ipset.py), IPVS (kproxy/ipvs/netlink.py).

The nf_tables batch encoder has a Cython twin (kproxy/_fastpath_netlink.pxi) that stays the hot
path; it produces the same bytes as message.encode_nfnl.
"""
