# Netlink message encoding (nftables backend): included into _fastpath.pyx so one extension
# module holds the whole fast path. Owned by the nftables backend; its pure-Python twin is in
# nftables/.
