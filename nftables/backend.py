"""NftablesBackend: the kube-proxy nftables model in our own table `ip kproxy`, programmed
through netlink in one nf_tables transaction per sync (no `nft` process on the sync path).

Guarantees:
- apply(ruleset, None) (full sync) lists the names of our table's chains and sets, then in one
  batch rewrites every desired chain and map and removes what is not desired; the dynamic
  affinity sets keep their entries. Applying the same ruleset twice leaves the table identical.
- apply(ruleset, previous) sends only what differs from `previous` (see plan.py).
- A batch is atomic: on any error the kernel keeps what it had, and ApplyError names the
  operation the kernel refused and its errno text.
- cleanup() deletes table ip kproxy and nothing else; inspect() reads our table back over
  netlink (chains with their rule counts, sets with their elements' counts).
- The netlink socket is opened on, and only used from, the NetNS thread.
- A backend made with family=6 does all of this for table `ip6 kproxy` from the state's IPv6
  view (same layout, nftables/family.py); the agent runs both through kproxy.agent.dualstack.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from kproxy.agent.backend import ApplyError, ApplyResult, Backend, BackendUnavailable
from kproxy.agent.families import IPV4, family_view
from kproxy.agent.protocols import BackendConfig, Namespace
from kproxy.agent.state import Changes, ProxyState
from kproxy.netns import NetNS

from . import wire as w
from .family import BY_VERSION
from .gcpause import gc_paused
from .model import TABLE, Ruleset
from .nlsocket import NftSocket
from .plan import ElementOwners, plan_full, plan_partial
from .render import ENDPOINT_SELECTIONS, render as render_ruleset
from .transaction import Transaction

RESTARTS = 5  # batches refused because another process committed in between, before giving up


@dataclass(frozen=True)
class Inspection:
    """Our table as the kernel holds it: chain name -> rule count, set name -> element count
    (None for sets whose elements were not listed), and the base-chain hooks."""

    exists: bool
    chains: dict[str, int]
    sets: dict[str, int | None]
    hooks: dict[str, tuple[str, int, int]]


def endpoint_selection(config: BackendConfig) -> str:
    value = config.nftables.endpoint_selection
    if value not in ENDPOINT_SELECTIONS:
        raise BackendUnavailable(f"nftables.endpointSelection {value!r}: want random or maglev")
    return value


class NftablesBackend(Backend):
    name = "nftables"
    families = (4, 6)

    def __init__(self, netns: Namespace | None, config: BackendConfig | None, family: int = IPV4) -> None:
        super().__init__(netns, config, family)
        self.nfproto = BY_VERSION[family].nfproto  # the table's family: ip or ip6 kproxy
        self._sock: NftSocket | None = None
        self.selection = endpoint_selection(self.config)
        self._owners: ElementOwners | None = None  # shared-element holders, as committed
        self._applied: Ruleset | None = None  # what the kernel holds after our last commit
        self._generation: int | None = None  # the kernel's ruleset generation after it

    @classmethod
    def probe(cls, netns: Namespace | None, config: BackendConfig | None = None, family: int = IPV4) -> None:
        """Raises BackendUnavailable unless nf_tables answers in `netns` (and the config's
        endpoint selection is known); both families need nothing more."""
        if config is not None:
            endpoint_selection(config)
        netns = netns if netns is not None else NetNS(None)

        def try_dump() -> None:
            sock = NftSocket()
            try:
                sock.dump(w.MSG_GETTABLE)
            finally:
                sock.close()
        try:
            netns.run(try_dump)
        except OSError as exc:
            raise BackendUnavailable(f"nftables mode needs nf_tables in the kernel: {exc}") from None

    # ------------------------------------------------------------------ socket (NetNS thread)

    def _socket(self) -> NftSocket:
        if self._sock is None:
            self._sock = NftSocket()
        return self._sock

    def _run(self, fn, *args):
        return self.netns.run(fn, *args)

    def _commit(self, tx: Transaction) -> None:
        """Sends `tx` as one batch (on the NetNS thread); raises ApplyError on any error.

        The batch is bound to the ruleset generation read just before (NFNL_BATCH_GENID), so
        after a commit the backend knows the kernel's generation exactly (its own + 1): a
        later full sync that finds it unchanged knows nothing was committed since."""
        if not len(tx):
            return  # nothing to commit: the kernel is as it was
        tx.family = self.nfproto
        self._generation = None
        self._applied = None  # apply() sets it again once this commit is its ruleset

        def send() -> None:
            sock = self._socket()
            for attempt in range(RESTARTS):
                generation = sock.generation()
                first = sock.seq
                data, described, last = tx.encode(first, generation)
                sock.seq = last + 2
                try:
                    errors = sock.send_batch(data, first, last)
                except OSError as exc:
                    raise ApplyError(f"nf_tables batch of {len(data)} bytes: {exc.strerror or exc}") from None
                if errors and errors[0].errno == errno.ERESTART and attempt + 1 < RESTARTS:
                    continue  # another process committed between our read and our batch
                if errors:
                    first_error = errors[0]
                    what = described.get(first_error.seq, f"message {first_error.seq}")
                    raise ApplyError(f"nf_tables refused {what!r}: {first_error.strerror}"
                                     + (f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""))
                self._generation = next_generation(generation)
                return
        self._run(send)

    # ------------------------------------------------------------------ render / apply

    def render(self, state: ProxyState, previous: Ruleset | None = None,
               changes: Changes | None = None) -> Ruleset:
        return render_ruleset(family_view(state, self.family), previous, changes, endpoint_selection=self.selection)

    def apply(self, ruleset: Ruleset, previous: Ruleset | None) -> ApplyResult:
        """previous None (a full sync) rewrites the whole table, unless the kernel's ruleset
        generation is still the one our last commit left: then nothing (ours or anyone's) was
        committed since, the kernel holds exactly what we last applied, and only the
        differences from that are sent (a periodic resync of an unchanged 10k-Service table
        costs one netlink round trip instead of a rewrite)."""
        full = previous is None
        unchanged = full and self._applied is not None and self._generation is not None \
            and self._run(lambda: self._socket().generation()) == self._generation
        base = self._applied if unchanged else previous
        with gc_paused():
            if base is None:
                self._owners = None
                chains, sets = self._run(self._list_names)
                tx = plan_full(ruleset, chains, sets)
                self._commit(tx)
                self._owners = ElementOwners.of(ruleset)
            else:
                if self._owners is None:  # e.g. a backend created with a ruleset already applied
                    self._owners = ElementOwners.of(base)
                tx = plan_partial(ruleset, base, self._owners)
                try:
                    self._commit(tx)
                except Exception:
                    self._owners = None  # the kernel's state is unknown until a full sync
                    raise
                self._owners.apply(tx.owner_delta)
        self._applied = ruleset
        detail = f"nftables: {len(tx)} operations"
        if unchanged:
            detail += " (kernel unchanged since our last commit: only differences sent)"
        return ApplyResult(full=full, objects_written=len(tx), detail=detail)

    def _list_names(self) -> tuple[list[str], dict[str, tuple]]:
        """Our table's chain names and its sets' names with their plan.signature()."""
        sock = self._socket()
        chains = [w.decode_string(a[w.CHAIN_NAME])
                  for a in sock.dump(w.MSG_GETCHAIN, ((w.CHAIN_TABLE, w.string(TABLE)),), self.nfproto)
                  if w.decode_string(a.get(w.CHAIN_TABLE, b"")) == TABLE]
        sets = {}
        for a in sock.dump(w.MSG_GETSET, ((w.SET_TABLE, w.string(TABLE)),), self.nfproto):
            if w.decode_string(a.get(w.SET_TABLE, b"")) != TABLE:
                continue
            num = [int.from_bytes(a.get(attr, b""), "big") for attr in
                   (w.SET_FLAGS, w.SET_KEY_TYPE, w.SET_KEY_LEN, w.SET_DATA_TYPE, w.SET_DATA_LEN)]
            sets[w.decode_string(a[w.SET_NAME])] = (*num, w.SET_EXPR in a)
        return chains, sets

    # ------------------------------------------------------------------ inspect / cleanup

    def inspect(self) -> Inspection:
        return self._run(self._inspect)

    def _inspect(self) -> Inspection:
        sock = self._socket()
        tables = [w.decode_string(a.get(w.TABLE_NAME, b"")) for a in sock.dump(w.MSG_GETTABLE, (), self.nfproto)]
        if TABLE not in tables:
            return Inspection(False, {}, {}, {})
        chains: dict[str, int] = {}
        hooks: dict[str, tuple[str, int, int]] = {}
        for a in sock.dump(w.MSG_GETCHAIN, ((w.CHAIN_TABLE, w.string(TABLE)),), self.nfproto):
            if w.decode_string(a.get(w.CHAIN_TABLE, b"")) != TABLE:
                continue
            name = w.decode_string(a[w.CHAIN_NAME])
            chains[name] = 0
            if w.CHAIN_HOOK in a:
                hook = w.parse_attrs(a[w.CHAIN_HOOK])
                hooks[name] = (w.decode_string(a.get(w.CHAIN_TYPE, b"")),
                               int.from_bytes(hook[w.HOOK_HOOKNUM], "big"),
                               int.from_bytes(hook[w.HOOK_PRIORITY], "big", signed=True))
        for a in sock.dump(w.MSG_GETRULE, ((w.RULE_TABLE, w.string(TABLE)),), self.nfproto):
            if w.decode_string(a.get(w.RULE_TABLE, b"")) == TABLE:
                name = w.decode_string(a[w.RULE_CHAIN])
                chains[name] = chains.get(name, 0) + 1
        sets: dict[str, int | None] = {}
        for a in sock.dump(w.MSG_GETSET, ((w.SET_TABLE, w.string(TABLE)),), self.nfproto):
            if w.decode_string(a.get(w.SET_TABLE, b"")) != TABLE:
                continue
            name = w.decode_string(a[w.SET_NAME])
            answers = sock.dump(w.MSG_GETSETELEM, ((w.SET_ELEM_LIST_TABLE, w.string(TABLE)),
                                                   (w.SET_ELEM_LIST_SET, w.string(name))), self.nfproto)
            sets[name] = sum(_count_list(x.get(w.SET_ELEM_LIST_ELEMENTS, b"")) for x in answers)
        return Inspection(True, chains, sets, hooks)

    def cleanup(self) -> None:
        self._applied = self._generation = None

        def delete() -> None:
            sock = self._socket()
            tables = [w.decode_string(a.get(w.TABLE_NAME, b"")) for a in sock.dump(w.MSG_GETTABLE, (), self.nfproto)]
            if TABLE not in tables:
                return
            tx = Transaction(family=self.nfproto)
            tx.delete_table()
            first = sock.seq
            data, described, last = tx.encode(first)
            sock.seq = last + 2
            errors = sock.send_batch(data, first, last)
            if errors and errors[0].errno != errno.ENOENT:
                raise ApplyError(f"nf_tables refused {described.get(errors[0].seq)!r}: {errors[0].strerror}")
        self._run(delete)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                self._run(sock.close)
            except RuntimeError:  # the NetNS executor is already shut down
                sock.close()


def next_generation(generation: int) -> int:
    """The generation after one commit (a 32-bit counter that skips 0)."""
    return generation % 0xFFFFFFFF + 1


def _count_list(nested: bytes) -> int:
    return len(w.parse_attrs_list(nested)) if nested else 0
