//! The Merkle tree of RFC 9162 §2.1: leaves hashed as `SHA-256(0x00 ‖ leaf)`, interior nodes
//! as `SHA-256(0x01 ‖ left ‖ right)`, the tree of `n` leaves split at the largest power of two
//! below `n`. Proofs are produced as §2.1.3.1 and §2.1.4.1 define them and checked as §2.1.3.2
//! and §2.1.4.2 say.

use aws_lc_rs::digest::{Context, SHA256};

/// A SHA-256 hash: a leaf's, a subtree's or a whole tree's.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    digest(&[&[0x00], data])
}

/// [`leaf_hash`] of the concatenation of `parts`, without concatenating them.
pub fn leaf_hash_of_parts(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    for part in parts {
        ctx.update(part);
    }
    finish(ctx)
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    digest(&[&[0x01], left, right])
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    digest(&[])
}

fn digest(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    for part in parts {
        ctx.update(part);
    }
    finish(ctx)
}

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An append-only tree that keeps the hash of every complete, aligned subtree (about two
/// hashes per leaf), so that the root, an inclusion proof or a consistency proof for any
/// size up to [`Tree::len`] costs O(log² n) hashes instead of rehashing the leaves.
///
/// A tree may also start from the *frontier* of a prefix whose leaves are gone (a pruned
/// log, [`Tree::from_frontier`]): the hashes of the complete subtrees that make up the first
/// `n` leaves, one per bit set in `n`. That is all later roots and proofs need: the root of
/// any size from `n` on, the inclusion proof of any leaf from `n` on, the consistency proof
/// between any two sizes from `n` on.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// `levels[k]`: the hashes of aligned subtrees of `2^k` leaves, from its `first` on.
    levels: Vec<Level>,
}

/// The complete subtrees of one height that the tree holds: those from index `first` on.
#[derive(Clone, Debug, Default)]
struct Level {
    first: u64,
    hashes: Vec<Hash>,
}

impl Level {
    fn end(&self) -> u64 {
        self.first + self.hashes.len() as u64
    }

    fn get(&self, index: u64) -> Option<Hash> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.hashes.get(at).copied()
    }
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// The tree whose first `size` leaves are known only by their `frontier`: the hashes of
    /// the complete subtrees of `[0, size)`, largest (leftmost) first, as
    /// [`Tree::frontier`] gives them. `None` unless there is one per bit set in `size`.
    pub fn from_frontier(size: u64, frontier: &[Hash]) -> Option<Tree> {
        if frontier.len() != size.count_ones() as usize {
            return None;
        }
        let height = (u64::BITS - size.leading_zeros()) as usize;
        let mut levels: Vec<Level> = (0..height)
            .map(|k| Level {
                first: size >> k,
                hashes: Vec::new(),
            })
            .collect();
        let mut hashes = frontier.iter();
        for k in (0..height).rev() {
            if (size >> k) & 1 == 1 {
                let level = levels.get_mut(k)?;
                level.first -= 1;
                level.hashes.push(*hashes.next()?);
            }
        }
        Some(Tree { levels })
    }

    /// The frontier of the first `size` leaves (see [`Tree::from_frontier`]); `None` past
    /// the end or inside a pruned prefix.
    pub fn frontier(&self, size: u64) -> Option<Vec<Hash>> {
        if size > self.len() {
            return None;
        }
        let mut out = Vec::new();
        let mut start = 0u64;
        for k in (0..u64::BITS as usize).rev() {
            if (size >> k) & 1 == 1 {
                out.push(self.levels.get(k)?.get(start >> k)?);
                start += 1 << k;
            }
        }
        Some(out)
    }

    /// The first leaf the tree holds (0 unless it started from a frontier).
    pub fn start(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.first)
    }

    /// How many leaves the tree has (with those of a pruned prefix).
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, Level::end)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf, given as its [`leaf_hash`].
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Level::default());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.hashes.push(carry);
            // An even end means the two last hashes just completed a subtree one level up
            // (the left one may be a frontier's).
            let end = row.end();
            if end % 2 != 0 {
                return;
            }
            match (row.get(end - 2), row.get(end - 1)) {
                (Some(left), Some(right)) => carry = node_hash(&left, &right),
                _ => return,
            }
            level += 1;
        }
    }

    /// The hash of leaf `index`, if the tree holds it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(index)
    }

    /// The root of the tree's first `size` leaves (`MTH(D[0:size])`); `None` past the end.
    pub fn root(&self, size: u64) -> Option<Hash> {
        if size == 0 {
            return Some(empty_root());
        }
        (size <= self.len())
            .then(|| self.subtree(0, size))
            .flatten()
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves
    /// (RFC 9162 §2.1.3.1); `None` unless `index < size ≤ len`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.len() {
            return None;
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof)?;
        Some(proof)
    }

    /// The consistency proof between the trees of the first `old` and the first `new`
    /// leaves (RFC 9162 §2.1.4.1); `None` unless `0 < old ≤ new ≤ len`. Empty when
    /// `old == new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        if old == 0 || old > new || new > self.len() {
            return None;
        }
        let mut proof = Vec::new();
        if old < new {
            self.subproof(old, 0, new, true, &mut proof)?;
        }
        Some(proof)
    }

    /// `MTH(D[start:end])`, for `start < end ≤ len`.
    fn subtree(&self, start: u64, end: u64) -> Option<Hash> {
        let n = end.checked_sub(start)?;
        if n == 0 {
            return None;
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            return self.levels.get(level)?.get(start >> n.trailing_zeros());
        }
        let k = split(n);
        Some(node_hash(
            &self.subtree(start, start + k)?,
            &self.subtree(start + k, end)?,
        ))
    }

    /// `PATH(m, D[start:end])`, the audit path, appended to `out` leaf side first.
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Option<()> {
        let n = end - start;
        if n <= 1 {
            return Some(());
        }
        let k = split(n);
        if m < start + k {
            self.path(m, start, start + k, out)?;
            out.push(self.subtree(start + k, end)?);
        } else {
            self.path(m, start + k, end, out)?;
            out.push(self.subtree(start, start + k)?);
        }
        Some(())
    }

    /// `SUBPROOF(m, D[start:end], whole)` of §2.1.4.1, appended to `out`.
    fn subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Option<()> {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end)?);
            }
            return Some(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out)?;
            out.push(self.subtree(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            out.push(self.subtree(start, start + k)?);
        }
        Some(())
    }
}

/// The right edge of a tree: the hashes of the complete subtrees that make up its leaves,
/// largest (leftmost) first, one per bit set in its size. Enough to append leaves and know
/// the root at every size as it is reached, in O(log n) memory: what a node signing
/// checkpoints and a verifier reading a log in order need. Proofs need a [`Tree`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// The frontier of `size` leaves given by its hashes (as [`Tree::frontier`] gives
    /// them); `None` unless there is one per bit set in `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Frontier> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier { size, hashes })
    }

    /// How many leaves.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf (its [`leaf_hash`]): like adding one in binary, each complete subtree
    /// of the size it completes merges into the next.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut bit = 0;
        while (self.size >> bit) & 1 == 1 {
            match self.hashes.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                None => break,
            }
            bit += 1;
        }
        self.hashes.push(carry);
        self.size += 1;
    }

    /// `MTH` of all the leaves: the subtrees folded from the right (RFC 9162 splits at the
    /// largest power of two, which is the first subtree).
    pub fn root(&self) -> Hash {
        let mut from_right = self.hashes.iter().rev();
        let Some(last) = from_right.next() else {
            return empty_root();
        };
        from_right.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The largest power of two smaller than `n` (for `n > 1`).
fn split(n: u64) -> u64 {
    let below = n.saturating_sub(1).max(1);
    1 << (63 - below.leading_zeros())
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): that `leaf` is leaf `index` of the tree
/// of `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of `old` leaves with root
/// `old_root` is a prefix of the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 || old > new {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
