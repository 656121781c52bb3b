//! RFC 6962 / RFC 9162 Merkle tree maths for the transparency log.
//!
//! Everything here is a pure function of hashes and tree sizes, so the log's
//! store, its API and offline verifiers all share one definition of what a
//! root, an inclusion proof and a consistency proof are. The store keeps only
//! the hashes of perfect subtrees ([`NodeId`]); [`CompactRange`] tells it which
//! ones to persist while appending, and [`ProofPlan`] tells it which ones to
//! read to answer a proof request.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: the only hash this log uses for leaves, nodes and roots.
pub type Hash = [u8; 32];

/// Domain-separation prefix for leaf hashes (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix for interior node hashes (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// Why a proof did not verify or could not be planned or assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index does not name a leaf of a tree of this size.
    #[error("leaf index {index} is outside a tree of size {size}; an inclusion proof needs index < size")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the proof is for.
        size: u64,
    },

    /// The newer tree of a consistency check is smaller than the older one.
    #[error("tree size went backwards: size1 = {size1} > size2 = {size2}; pass the older (smaller) tree first")]
    SizesOutOfOrder {
        /// The size of the tree that should be the older one.
        size1: u64,
        /// The size of the tree that should be the newer one.
        size2: u64,
    },

    /// A consistency proof from the empty tree was requested or presented.
    #[error("consistency proof from an empty tree (size1 = 0) is meaningless; every tree extends the empty tree, so skip the check instead")]
    EmptyOldTree,

    /// The proof has the wrong number of hashes for the sizes it claims to cover.
    #[error("proof has {got} hashes but a proof for these tree sizes has exactly {expected}; the proof was built for other sizes or was truncated")]
    ProofLength {
        /// The number of hashes a valid proof has.
        expected: usize,
        /// The number of hashes supplied.
        got: usize,
    },

    /// The root rebuilt from the proof differs from the root the caller trusts.
    #[error("proof leads to root {} but the expected root is {}; the leaf, the proof or the root is wrong", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch {
        /// The root the caller trusts (e.g. from a signed checkpoint).
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },

    /// A consistency proof does not rebuild the older root, so it does not prove the older tree is a prefix.
    #[error("consistency proof leads to old root {} but the old root is {}; the old checkpoint or the proof is wrong", hex::encode(.computed), hex::encode(.expected))]
    OldRootMismatch {
        /// The older root the caller trusts.
        expected: Hash,
        /// The older root the proof leads to.
        computed: Hash,
    },

    /// Stored frontier hashes do not match the tree size they are said to belong to.
    #[error("a tree of size {size} has {expected} frontier hashes but {got} were given; the stored frontier is out of step with the stored size")]
    FrontierLength {
        /// The tree size the frontier is said to belong to.
        size: u64,
        /// The number of frontier hashes a tree of that size has.
        expected: usize,
        /// The number of hashes supplied.
        got: usize,
    },

    /// The fetched node hashes do not line up with the node ids of the plan.
    #[error("proof plan lists {expected} nodes but {got} hashes were fetched; fetch exactly one hash per node id, in order")]
    HashCount {
        /// The number of node ids in the plan.
        expected: usize,
        /// The number of hashes supplied.
        got: usize,
    },
}

/// Identifies a perfect subtree, the unit the store persists.
///
/// The node at `level` L and `index` i covers leaves `[i << L, (i + 1) << L)`;
/// level 0 nodes are the leaves themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves: the subtree covers `2^level` leaves.
    pub level: u8,
    /// Position among the nodes of the same level, counted from the left.
    pub index: u64,
}

impl NodeId {
    /// Names a perfect subtree, for stores that build ids from their own keys.
    pub fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The node whose subtree contains this one and its sibling.
    pub fn parent(self) -> Self {
        Self {
            level: self.level.saturating_add(1),
            index: self.index >> 1,
        }
    }

    /// The other child of this node's parent.
    pub fn sibling(self) -> Self {
        Self {
            level: self.level,
            index: self.index ^ 1,
        }
    }

    /// The index of the last leaf this subtree covers, `(index + 1) · 2^level − 1`. The
    /// nodes a batch of appends completes all end inside the batch, so a store that keys
    /// nodes by it writes them side by side (the SQLite store's `tree_nodes_by_end`).
    pub fn last_leaf(self) -> u64 {
        self.index
            .wrapping_add(1)
            .wrapping_shl(u32::from(self.level))
            .wrapping_sub(1)
    }

    /// The node at `level` whose subtree ends at leaf `last_leaf`: the inverse of
    /// [`NodeId::last_leaf`], for stores that key nodes by it.
    pub fn ending_at(level: u8, last_leaf: u64) -> Self {
        Self {
            level,
            index: (last_leaf.wrapping_add(1).wrapping_shr(u32::from(level))).wrapping_sub(1),
        }
    }

    /// Whether this perfect subtree is complete in a tree of `size` leaves,
    /// i.e. whether a store of that tree can hold its hash.
    pub fn exists_in(self, size: u64) -> bool {
        let end = (u128::from(self.index) + 1) << self.level;
        end <= u128::from(size)
    }
}

/// Hashes a log entry into a leaf, domain-separated from interior nodes so a
/// leaf can never be passed off as a node (RFC 6962 §2.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// Hashes two children into their parent (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the tree with no leaves, which RFC 6962 defines as SHA-256 of
/// the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The RFC 6962 Merkle Tree Hash of a whole list of leaf hashes: the reference
/// definition, for tests and for trees small enough to hold in memory.
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [only] => *only,
        _ => {
            // Invariant: len >= 2, so 1 <= k < len and split_at cannot panic.
            let k = largest_power_of_two_below(leaves.len());
            let (left, right) = leaves.split_at(k);
            node_hash(&root_from_leaf_hashes(left), &root_from_leaf_hashes(right))
        }
    }
}

/// The largest power of two strictly less than `n`, for `n >= 2`: the split
/// point of RFC 6962's MTH.
fn largest_power_of_two_below(n: usize) -> usize {
    let below = n.saturating_sub(1).max(1);
    1 << (usize::BITS - 1 - below.leading_zeros())
}

/// Number of significant bits of `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// Checks that `leaf` is the leaf at `index` of the tree of `size` leaves
/// whose root is `root`, so a client can trust an entry given only a signed
/// root and a short proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    let computed = root_from_inclusion_proof(index, size, leaf, proof)?;
    if computed != *root {
        return Err(MerkleError::RootMismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// The root a leaf and its inclusion proof lead to, for callers that compare
/// it against several candidate roots or report it.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::ProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 §2.1.3.2, step by step.
    let mut fnode = index;
    let mut snode = size - 1; // size > index >= 0, so no underflow.
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(MerkleError::ProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Length of the inclusion proof for `index` in a tree of `size`, for
/// `index < size`: the siblings below the point where the paths to `index`
/// and to the last leaf part, plus one left sibling per set bit above it.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = (index.checked_shr(inner).unwrap_or(0)).count_ones();
    (inner + border) as usize
}

/// Length of the consistency proof between `0 < size1 < size2`.
fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let inner = bit_len((size1 - 1) ^ (size2 - 1));
    let border = ((size1 - 1).checked_shr(inner).unwrap_or(0)).count_ones();
    let shift = size1.trailing_zeros();
    let seed = usize::from(!size1.is_power_of_two());
    seed + (inner.saturating_sub(shift) + border) as usize
}

/// Checks that the tree of `size2` leaves with root `root2` extends the tree
/// of `size1` leaves with root `root1` without rewriting it, so a client can
/// detect a log that forks or rewrites history (RFC 9162 §2.1.4.2).
///
/// Follows transparency-dev/merkle on the edge cases: equal sizes need an
/// empty proof and equal roots; `size1 == 0` is rejected as meaningless.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if size2 < size1 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if root1 != root2 {
            return Err(MerkleError::RootMismatch {
                expected: *root2,
                computed: *root1,
            });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(size1, size2);
    if proof.len() != expected {
        return Err(MerkleError::ProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 §2.1.4.2, step by step. Step 2: a power-of-two old tree is
    // itself a node of the new tree, so its root seeds the walk.
    let mut path = proof.iter();
    let seeded_with_root1 = size1.is_power_of_two();
    let first = if seeded_with_root1 {
        *root1
    } else {
        match path.next() {
            Some(h) => *h,
            None => {
                return Err(MerkleError::ProofLength {
                    expected,
                    got: proof.len(),
                })
            }
        }
    };
    let mut fnode = size1 - 1; // size1 > 0 checked above.
    let mut snode = size2 - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = first;
    let mut sr = first;
    for c in path {
        if snode == 0 {
            return Err(MerkleError::ProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *root1 {
        return Err(MerkleError::OldRootMismatch {
            expected: *root1,
            computed: fr,
        });
    }
    if sr != *root2 {
        return Err(MerkleError::RootMismatch {
            expected: *root2,
            computed: sr,
        });
    }
    Ok(())
}

/// The right edge of the tree: the roots of the perfect subtrees that cover
/// `[0, size)`, largest first. It is all a log needs to append and to compute
/// its root without reading the rest of the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    /// Number of leaves covered.
    size: u64,
    /// Invariant: `hashes.len() == size.count_ones()`, the hash of
    /// `frontier_ids(size)[i]` at position `i`.
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The frontier of the empty tree, where a new log starts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from what the store persisted, refusing hashes that
    /// cannot belong to a tree of `size` leaves.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::FrontierLength {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// The nodes whose hashes make up the frontier of a tree of `size` leaves,
    /// largest (leftmost) first, so a store knows which to load for
    /// [`CompactRange::from_parts`].
    pub fn frontier_ids(size: u64) -> Vec<NodeId> {
        (0..u64::BITS as u8)
            .rev()
            .filter(|&level| size >> level & 1 == 1)
            .map(|level| NodeId {
                level,
                // Bit `level` of size is set, so size >> level >= 1.
                index: (size >> level) - 1,
            })
            .collect()
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier hashes, in the order of [`CompactRange::frontier_ids`].
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The RFC 6962 root of the tree of `size()` leaves, the value a
    /// checkpoint signs.
    pub fn root(&self) -> Hash {
        let mut rev = self.hashes.iter().rev();
        let Some(last) = rev.next() else {
            return empty_root();
        };
        rev.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Adds the next leaf and returns every perfect node this completes,
    /// starting with the leaf itself (level 0), so the store can persist all
    /// the hashes later proofs will need.
    ///
    /// A tree of `u64::MAX` leaves, which no log reaches, stays at that size.
    pub fn append(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        // Invariant: a log cannot append 2^64 - 1 entries (584 years at a
        // billion appends a second), so this add does not overflow.
        let new_size = self.size.saturating_add(1);
        let mut id = NodeId {
            level: 0,
            index: self.size,
        };
        let mut hash = leaf_hash;
        let mut completed = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        completed.push((id, hash));
        // A right child completes its parent; its left sibling is the last
        // frontier hash, because the frontier holds one hash per set bit of
        // size and a right child at level L means bit L of size is set.
        while id.index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                // Unreachable while the invariant on `hashes` holds.
                break;
            };
            hash = node_hash(&left, &hash);
            id = id.parent();
            completed.push((id, hash));
        }
        self.hashes.push(hash);
        self.size = new_size;
        completed
    }
}

/// Which stored perfect-subtree hashes make up a proof, and how to turn them
/// into the RFC 9162 proof, so a store can answer proofs with O(log n) reads.
///
/// A proof element may be the root of an incomplete subtree at the right edge
/// of the tree (an "ephemeral" node, never stored); it is rebuilt from the
/// perfect nodes that cover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    /// Nodes to read, in proof order.
    ids: Vec<NodeId>,
    /// `ids[ephemeral]` fold into a single proof element, listed lowest level
    /// first. Empty when the proof has no ephemeral node.
    ephemeral: Range<usize>,
}

impl ProofPlan {
    /// The nodes to read from the store, in the order `assemble` expects
    /// their hashes.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Number of hashes in the proof `assemble` returns.
    pub fn proof_len(&self) -> usize {
        self.ids.len() - self.ephemeral.len().saturating_sub(1)
    }

    /// Turns the fetched hashes (one per id, same order) into the proof that
    /// `verify_inclusion` or `verify_consistency` checks.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
        self.assemble_folding(hashes, fold_ephemeral)
    }

    /// [`ProofPlan::assemble`], taking the ephemeral node from `memo` when the previous
    /// proof assembled with it folded the same hashes.
    pub fn assemble_with(
        &self,
        hashes: &[Hash],
        memo: &mut FoldMemo,
    ) -> Result<Vec<Hash>, MerkleError> {
        self.assemble_folding(hashes, |ephemeral| memo.fold(ephemeral))
    }

    /// The proof, with `fold` turning the ephemeral range's hashes (never empty) into its node.
    fn assemble_folding(
        &self,
        hashes: &[Hash],
        mut fold: impl FnMut(&[Hash]) -> Hash,
    ) -> Result<Vec<Hash>, MerkleError> {
        if hashes.len() != self.ids.len() {
            return Err(MerkleError::HashCount {
                expected: self.ids.len(),
                got: hashes.len(),
            });
        }
        let mut proof = Vec::with_capacity(self.proof_len());
        for (i, hash) in hashes.iter().enumerate() {
            if i == self.ephemeral.start && !self.ephemeral.is_empty() {
                proof.push(fold(&hashes[self.ephemeral.clone()]));
            }
            if !self.ephemeral.contains(&i) {
                proof.push(*hash);
            }
        }
        Ok(proof)
    }

    /// Drops the first node, which the verifier already knows (the leaf, or a
    /// power-of-two old tree's root).
    fn skip_first(mut self) -> Self {
        if !self.ids.is_empty() {
            self.ids.remove(0);
            if !self.ephemeral.is_empty() {
                self.ephemeral =
                    self.ephemeral.start.saturating_sub(1)..self.ephemeral.end.saturating_sub(1);
            }
        }
        self
    }
}

/// The last ephemeral node [`ProofPlan::assemble_with`] folded, and the hashes it was folded
/// from.
///
/// The entries of one batch sit together at the tree's right edge, and most of their proofs
/// carry the same ephemeral node (the incomplete subtree to their right). Without the memo each
/// proof hashed it again: one hash per node folded, several per answer when the tree's size
/// has many one bits.
#[derive(Debug, Default)]
pub struct FoldMemo {
    folded: Vec<Hash>,
    hash: Hash,
    reused: u64,
}

impl FoldMemo {
    /// How many folds were copied from the memo rather than hashed.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// [`fold_ephemeral`] of `hashes`, copied when they are the ones folded last.
    fn fold(&mut self, hashes: &[Hash]) -> Hash {
        if self.folded == hashes {
            self.reused += 1;
            return self.hash;
        }
        self.hash = fold_ephemeral(hashes);
        self.folded.clear();
        self.folded.extend_from_slice(hashes);
        self.hash
    }
}

/// The root of the ephemeral node made of `hashes`, lowest level first: each next one is the
/// left child of what has been folded so far. [`ProofPlan::assemble_folding`] never folds an
/// empty range.
fn fold_ephemeral(hashes: &[Hash]) -> Hash {
    hashes
        .iter()
        .copied()
        .reduce(|right, left| node_hash(&left, &right))
        .unwrap_or_default()
}

/// Plans the inclusion proof for leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof_plan(index: u64, size: u64) -> Result<ProofPlan, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    Ok(plan_path(NodeId { level: 0, index }, size).skip_first())
}

/// Plans the consistency proof from the tree of `size1` leaves to the tree of
/// `size2` leaves.
pub fn consistency_proof_plan(size1: u64, size2: u64) -> Result<ProofPlan, MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    if size1 == size2 {
        return Ok(ProofPlan {
            ids: Vec::new(),
            ephemeral: 0..0,
        });
    }
    // The largest perfect subtree ending at size1 seeds the proof; the rest is
    // that node's inclusion path in the new tree.
    let level = size1.trailing_zeros() as u8;
    let seed = NodeId {
        level,
        index: (size1 - 1) >> level,
    };
    let plan = plan_path(seed, size2);
    if size1.is_power_of_two() {
        // The seed is the whole old tree, whose root the verifier has.
        Ok(plan.skip_first())
    } else {
        Ok(plan)
    }
}

/// The node itself followed by the nodes that prove it is in the tree of
/// `size` leaves. Requires `node.exists_in(size)`.
fn plan_path(node: NodeId, size: u64) -> ProofPlan {
    let level = u32::from(node.level);
    // The fork is the highest ancestor of `node` that is still a perfect
    // subtree of the tree: above it, paths to `node` and to leaf `size` meet.
    let inner = bit_len(node.index ^ (size >> level)).saturating_sub(1);
    let fork_level = level + inner;
    let fork_index = node.index >> inner;
    let fork_begin = fork_index << fork_level;
    let fork_end = (fork_index + 1) << fork_level;

    let mut ids = Vec::with_capacity(1 + 2 * u64::BITS as usize);
    ids.push(node);
    let mut cur = node;
    while u32::from(cur.level) < fork_level {
        ids.push(cur.sibling());
        cur = cur.parent();
    }
    // The fork's sibling covers [fork_end, size): not perfect unless the
    // range is a single node, so it is rebuilt from the nodes covering it.
    let start = ids.len();
    ids.extend(range_nodes(fork_end, size).into_iter().rev());
    let end = ids.len();
    // Above the fork, every sibling on the path is a perfect node to the left.
    ids.extend(range_nodes(0, fork_begin).into_iter().rev());

    let ephemeral = if end - start > 1 { start..end } else { 0..0 };
    ProofPlan { ids, ephemeral }
}

/// The perfect subtrees that exactly cover leaves `[begin, end)`, left to
/// right, each as large as alignment allows.
fn range_nodes(mut begin: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    while begin < end {
        let by_alignment = if begin == 0 {
            63
        } else {
            begin.trailing_zeros()
        };
        let by_length = bit_len(end - begin) - 1;
        let level = by_alignment.min(by_length);
        nodes.push(NodeId {
            level: level as u8,
            index: begin >> level,
        });
        begin += 1 << level;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// RFC 9162 §2.1.3.1 PATH(m, D[n]), written from the definition.
    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = largest_power_of_two_below(n);
        let (left, right) = leaves.split_at(k);
        if m < k {
            let mut p = naive_path(m, left);
            p.push(root_from_leaf_hashes(right));
            p
        } else {
            let mut p = naive_path(m - k, right);
            p.push(root_from_leaf_hashes(left));
            p
        }
    }

    /// RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    fn naive_consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
            let n = leaves.len();
            if m == n {
                return if b {
                    Vec::new()
                } else {
                    vec![root_from_leaf_hashes(leaves)]
                };
            }
            let k = largest_power_of_two_below(n);
            let (left, right) = leaves.split_at(k);
            if m <= k {
                let mut p = subproof(m, left, b);
                p.push(root_from_leaf_hashes(right));
                p
            } else {
                let mut p = subproof(m - k, right, false);
                p.push(root_from_leaf_hashes(left));
                p
            }
        }
        subproof(m, leaves, true)
    }

    fn test_leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn fetch(store: &HashMap<NodeId, Hash>, plan: &ProofPlan, size: u64) -> Vec<Hash> {
        plan.ids()
            .iter()
            .map(|id| {
                assert!(id.exists_in(size), "{id:?} is not complete at size {size}");
                *store.get(id).expect("planned node was stored")
            })
            .collect()
    }

    fn max_plan_len(size: u64) -> usize {
        2 * bit_len(size) as usize + 1
    }

    fn check_inclusion(store: &HashMap<NodeId, Hash>, leaves: &[Hash], index: u64) {
        let size = leaves.len() as u64;
        let root = root_from_leaf_hashes(leaves);
        let plan = inclusion_proof_plan(index, size).unwrap();
        assert!(plan.ids().len() <= max_plan_len(size));
        let proof = plan.assemble(&fetch(store, &plan, size)).unwrap();
        assert_eq!(proof.len(), plan.proof_len());
        assert_eq!(
            proof,
            naive_path(index as usize, leaves),
            "inclusion {index} of {size}"
        );
        let leaf = leaves[index as usize];
        verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
        assert_eq!(
            root_from_inclusion_proof(index, size, &leaf, &proof).unwrap(),
            root
        );
    }

    fn check_consistency(store: &HashMap<NodeId, Hash>, leaves: &[Hash], size1: u64) {
        let size2 = leaves.len() as u64;
        let old = &leaves[..size1 as usize];
        let root1 = root_from_leaf_hashes(old);
        let root2 = root_from_leaf_hashes(leaves);
        let plan = consistency_proof_plan(size1, size2).unwrap();
        assert!(plan.ids().len() <= max_plan_len(size2));
        let proof = plan.assemble(&fetch(store, &plan, size2)).unwrap();
        assert_eq!(
            proof,
            naive_consistency(size1 as usize, leaves),
            "consistency {size1} -> {size2}"
        );
        verify_consistency(size1, size2, &root1, &root2, &proof).unwrap();
        if size1 < size2 {
            assert!(verify_consistency(size1, size2, &root2, &root1, &proof).is_err());
        }
    }

    /// Appends leaves one by one, checking every persisted node against the
    /// reference MTH; at the sizes `checked` selects, also checks the frontier
    /// and root and calls `at_size`.
    fn grow(
        n: u64,
        checked: impl Fn(u64) -> bool,
        mut at_size: impl FnMut(&HashMap<NodeId, Hash>, &[Hash]),
    ) {
        let leaves = test_leaves(n);
        let mut store = HashMap::new();
        let mut range = CompactRange::new();
        assert_eq!(range.root(), empty_root());
        for (i, leaf) in leaves.iter().enumerate() {
            let completed = range.append(*leaf);
            assert_eq!(completed[0], (NodeId::new(0, i as u64), *leaf));
            for (id, hash) in completed {
                let begin = (id.index << id.level) as usize;
                let end = ((id.index + 1) << id.level) as usize;
                assert_eq!(hash, root_from_leaf_hashes(&leaves[begin..end]));
                assert!(store.insert(id, hash).is_none(), "{id:?} stored twice");
            }
            let size = i as u64 + 1;
            assert_eq!(range.size(), size);
            if !checked(size) {
                continue;
            }
            let prefix = &leaves[..=i];
            assert_eq!(range.root(), root_from_leaf_hashes(prefix));
            let ids = CompactRange::frontier_ids(size);
            let frontier: Vec<Hash> = ids.iter().map(|id| store[id]).collect();
            assert_eq!(range.hashes(), frontier.as_slice());
            let rebuilt = CompactRange::from_parts(size, frontier).unwrap();
            assert_eq!(rebuilt, range);
            at_size(&store, prefix);
        }
    }

    /// A node's last leaf is the end of the leaves it covers, and the node is found again from
    /// it and its level.
    #[test]
    fn a_node_is_found_again_from_its_last_leaf() {
        for level in 0u8..20 {
            for index in [0u64, 1, 2, 3, 7, 1000, 123_456] {
                let end = NodeId { level, index }.last_leaf();
                // The subtree's last leaf: it covers 2^level leaves from index * 2^level.
                assert_eq!(end, ((index + 1) << level) - 1);
                assert_eq!(NodeId::ending_at(level, end), NodeId { level, index });
            }
        }
    }
    #[test]
    fn every_proof_up_to_70_leaves_matches_the_rfc_definition() {
        grow(
            70,
            |_| true,
            |store, leaves| {
                let size = leaves.len() as u64;
                for index in 0..size {
                    check_inclusion(store, leaves, index);
                }
                for size1 in 1..=size {
                    check_consistency(store, leaves, size1);
                }
            },
        );
    }

    #[test]
    fn random_proofs_in_larger_trees_match_the_rfc_definition() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            // xorshift64: deterministic, good enough to pick test positions.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let checked = [255_u64, 256, 257, 1000, 1023, 1025, 3000];
        grow(
            3000,
            |size| checked.contains(&size),
            |store, leaves| {
                let size = leaves.len() as u64;
                for index in [0, size - 1, size / 2] {
                    check_inclusion(store, leaves, index);
                }
                for _ in 0..8 {
                    check_inclusion(store, leaves, next(size));
                    check_consistency(store, leaves, next(size) + 1);
                }
                check_consistency(store, leaves, 1);
                check_consistency(store, leaves, size - 1);
            },
        );
    }

    /// A batch's answers are assembled one after another with one memo; each must be the
    /// proof it would be alone, also when another proof's fold comes between them.
    #[test]
    fn proofs_assembled_with_one_memo_match_those_assembled_alone() {
        grow(
            3000,
            |size| [1023, 2999, 3000].contains(&size),
            |store, leaves| {
                let size = leaves.len() as u64;
                let mut memo = FoldMemo::default();
                for index in size - 300..size {
                    let plan = inclusion_proof_plan(index, size).unwrap();
                    let proof = plan
                        .assemble_with(&fetch(store, &plan, size), &mut memo)
                        .unwrap();
                    assert_eq!(
                        proof,
                        naive_path(index as usize, leaves),
                        "{index} of {size}"
                    );
                    if index % 7 == 0 {
                        let plan = consistency_proof_plan(index + 1, size).unwrap();
                        let proof = plan
                            .assemble_with(&fetch(store, &plan, size), &mut memo)
                            .unwrap();
                        assert_eq!(proof, naive_consistency(index as usize + 1, leaves));
                    }
                }
                assert!(
                    memo.reused() > 100,
                    "size {size}: {} folds reused",
                    memo.reused()
                );
            },
        );
    }

    /// The 8-leaf tree used by Certificate Transparency implementations.
    fn ct_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| leaf_hash(&hex::decode(h).unwrap()))
        .collect()
    }

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn ct_reference_roots() {
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = ct_leaves();
        let mut range = CompactRange::new();
        for (i, want) in roots.iter().enumerate() {
            range.append(leaves[i]);
            assert_eq!(
                root_from_leaf_hashes(&leaves[..=i]),
                h(want),
                "size {}",
                i + 1
            );
            assert_eq!(range.root(), h(want), "size {}", i + 1);
        }
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn ct_reference_proofs() {
        let leaves = ct_leaves();
        let root8 = root_from_leaf_hashes(&leaves);
        let incl = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
        .map(h);
        verify_inclusion(0, 8, &leaves[0], &incl, &root8).unwrap();
        assert_eq!(naive_path(0, &leaves), incl);

        let cons_6_8 = [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]
        .map(h);
        let root6 = root_from_leaf_hashes(&leaves[..6]);
        verify_consistency(6, 8, &root6, &root8, &cons_6_8).unwrap();
        assert_eq!(naive_consistency(6, &leaves), cons_6_8);
    }

    #[test]
    fn bad_requests_are_rejected() {
        assert_eq!(
            inclusion_proof_plan(5, 5),
            Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            consistency_proof_plan(3, 2),
            Err(MerkleError::SizesOutOfOrder { size1: 3, size2: 2 })
        );
        assert_eq!(consistency_proof_plan(0, 2), Err(MerkleError::EmptyOldTree));
        assert_eq!(consistency_proof_plan(4, 4).unwrap().ids(), &[]);
        assert_eq!(
            CompactRange::from_parts(3, vec![[0; 32]]),
            Err(MerkleError::FrontierLength {
                size: 3,
                expected: 2,
                got: 1
            })
        );
        let plan = inclusion_proof_plan(2, 7).unwrap();
        assert!(matches!(
            plan.assemble(&[]),
            Err(MerkleError::HashCount { got: 0, .. })
        ));
        let leaf = leaf_hash(b"x");
        assert_eq!(
            verify_inclusion(0, 1, &leaf, &[leaf], &leaf),
            Err(MerkleError::ProofLength {
                expected: 0,
                got: 1
            })
        );
        assert!(matches!(
            verify_inclusion(0, 1, &leaf, &[], &empty_root()),
            Err(MerkleError::RootMismatch { .. })
        ));
        assert_eq!(
            verify_consistency(0, 0, &leaf, &leaf, &[]),
            Err(MerkleError::EmptyOldTree)
        );
    }

    #[test]
    fn frontier_ids_follow_the_set_bits_of_size() {
        assert_eq!(CompactRange::frontier_ids(0), vec![]);
        assert_eq!(
            CompactRange::frontier_ids(13),
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        assert_eq!(CompactRange::frontier_ids(u64::MAX).len(), 64);
        assert!(NodeId::new(63, 0).exists_in(u64::MAX));
        assert!(!NodeId::new(63, 1).exists_in(u64::MAX));
    }

    #[test]
    fn error_messages_name_the_numbers() {
        let msg = MerkleError::ProofLength {
            expected: 3,
            got: 2,
        }
        .to_string();
        assert!(
            msg.contains("has 2 hashes") && msg.contains("exactly 3"),
            "{msg}"
        );
        let msg = MerkleError::RootMismatch {
            expected: [0; 32],
            computed: [0xab; 32],
        }
        .to_string();
        assert!(
            msg.contains("abababab") && msg.contains("00000000"),
            "{msg}"
        );
    }
}
