"""Where each balancing chain's endpoints live: a range of slots in a shared map.

Why: the kernel finds a set by name with a linear walk over the table's sets, and creating one
walks them all too, so a map per Service made a full sync quadratic in the number of Services
(measured: 10,000 empty sets take 4.6 s to create, 10,000 chains 0.03 s). One map for all is
quadratic the other way: adding an element to a map walks every rule bound to it (10,000
chains x 100,000 endpoints: 41 s of commit). So chains share maps in groups: the blocks
SHARD_BLOCKS*k .. SHARD_BLOCKS*(k+1)-1 live in map "endpoints-k" (at most 64 chains bound to a
map, about N/64 maps), and a chain picks among its slots with `numgen random mod N offset FIRST
map @endpoints-k` (nft prints and parses that form).

A range is whole blocks of BLOCK slots. A chain keeps its range while its slot count fits (a
changed endpoint is then one element replaced), and takes a new one when it outgrows it.
Allocation is deterministic: the lowest free block first, fresh blocks above `top` for ranges
of more than one block. Block 0 is never used, so an offset is never 0 (nft leaves "offset 0"
out of its listing).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

BLOCK_BITS = 12
BLOCK = 1 << BLOCK_BITS  # slots per block: a chain with up to 4096 endpoints takes one block
MAX_BLOCKS = (1 << 32) // BLOCK  # the slot is a 32-bit register


class SlotsExhausted(RuntimeError):
    pass


@dataclass(frozen=True)
class SlotState:
    """The allocator's state as a Ruleset keeps it (immutable): freed single blocks and the
    first never-used block."""

    free: tuple[int, ...] = ()
    top: int = 1


class SlotAllocator:
    """A working copy of a SlotState for one render."""

    def __init__(self, state: SlotState | None = None) -> None:
        state = state or SlotState()
        self.free = list(state.free)
        heapq.heapify(self.free)
        self.top = state.top

    def take(self, slots: int) -> tuple[int, int]:
        """(first block, block count) of a new range for `slots` slots."""
        count = max(1, -(-slots // BLOCK))
        if count == 1 and self.free:
            return heapq.heappop(self.free), 1
        if self.top + count > MAX_BLOCKS:
            raise SlotsExhausted(f"no room for {slots} more endpoint slots in nftables' shared maps")
        first, self.top = self.top, self.top + count
        return first, count

    def give(self, first: int, count: int) -> None:
        for block in range(first, first + count):
            heapq.heappush(self.free, block)

    def state(self) -> SlotState:
        return SlotState(tuple(sorted(self.free)), self.top)


SHARD_BLOCKS = 64  # blocks (balancing chains) per shared map


def shard(first_block: int) -> int:
    """The shared map (its number) that holds a range starting at `first_block`."""
    return first_block // SHARD_BLOCKS


def shards(state: SlotState) -> int:
    """How many shared maps the allocated blocks need (block 0 is never used)."""
    return shard(state.top - 1) + 1 if state.top > 1 else 0


def offset(first_block: int) -> int:
    """The first slot of a range."""
    return first_block * BLOCK


def fits(count: int, slots: int) -> bool:
    return slots <= count * BLOCK
