"""The largest and the smallest network of a cross-layer space (the sandwich rule's fixed paths, and the
work that sizes the thread policy)."""

from __future__ import annotations

from crossnas.space.arch import BlockArch, NetworkArch

# block kinds by the work one block does at a given width: a residual block adds a 1x1 shortcut to the
# two 3x3 convolutions; a vgg_pool block halves the map for every later block
_BY_WORK = ("residual", "vgg", "vgg_pool")


def largest_network(space) -> NetworkArch:
    """Every slot active with the costliest kind the pool limit allows, the widest width, the most bits."""
    kinds = [k for k in _BY_WORK if k in space.block_kinds]
    blocks, pools = [], 0
    for _ in range(space.n_slots):
        kind = next(k for k in kinds if k != "vgg_pool" or pools < space.max_pools) if kinds else "skip"
        pools += kind == "vgg_pool"
        blocks.append(BlockArch(kind, max(space.widths), max(space.wbits), max(space.abits)))
    return NetworkArch(tuple(blocks), head_bits=int(space.head_bits))


def smallest_network(space) -> NetworkArch:
    """One active block (the cheapest kind, narrowest width, fewest bits), then skips where the space has
    them; without skips every slot takes the cheapest kind the pool limit allows."""
    kinds = [k for k in reversed(_BY_WORK) if k in space.block_kinds]
    blocks, pools = [], 0
    for i in range(space.n_slots):
        if i > 0 and "skip" in space.block_kinds:
            blocks.append(BlockArch("skip", 0, min(space.wbits), min(space.abits)))
            continue
        kind = next(k for k in kinds if k != "vgg_pool" or pools < space.max_pools)
        pools += kind == "vgg_pool"
        blocks.append(BlockArch(kind, min(space.widths), min(space.wbits), min(space.abits)))
    return NetworkArch(tuple(blocks), head_bits=int(space.head_bits))
