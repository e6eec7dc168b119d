//! The tree against a second, deliberately naive implementation written from RFC 9162's
//! definitions (§2.1.1 MTH, §2.1.3.1 PATH, §2.1.4.1 PROOF/SUBPROOF) over plain slices, for
//! every tree size from 1 to 300: roots, every inclusion proof, every consistency proof, and
//! that each proof checks and a damaged one does not.

use super::*;
use aws_lc_rs::digest::{digest as sha256, SHA256};

/// MTH(D[n]) straight from §2.1.1, hashing from the leaves' data every time.
fn mth(d: &[Vec<u8>]) -> Hash {
    let out = match d.len() {
        0 => sha256(&SHA256, b""),
        1 => sha256(&SHA256, &[&[0u8][..], &d[0]].concat()),
        n => {
            let k = largest_power_of_two_below(n);
            let (l, r) = (mth(&d[..k]), mth(&d[k..]));
            sha256(&SHA256, &[&[1u8][..], &l, &r].concat())
        }
    };
    out.as_ref().try_into().unwrap()
}

fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn naive_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        let mut p = naive_path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = naive_path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn naive_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        let mut p = naive_subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = naive_subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn data(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn tree_of(d: &[Vec<u8>]) -> Tree {
    let mut t = Tree::new();
    for leaf in d {
        t.push(leaf_hash(leaf));
    }
    t
}

fn damaged(proof: &[Hash]) -> Vec<Hash> {
    let mut bad = proof.to_vec();
    if let Some(first) = bad.first_mut() {
        first[0] ^= 1;
    }
    bad
}

#[test]
fn roots_match_the_definition_for_every_size_to_300() {
    let d = data(300);
    let t = tree_of(&d);
    assert_eq!(t.len(), 300);
    assert_eq!(t.root(0), Some(mth(&[])));
    for n in 1..=300 {
        assert_eq!(t.root(n as u64), Some(mth(&d[..n])), "size {n}");
    }
    assert_eq!(t.root(301), None);
}

#[test]
fn inclusion_proofs_match_the_definition_and_check() {
    let d = data(301);
    let t = tree_of(&d[..300]);
    for n in 1..=300usize {
        let root = mth(&d[..n]);
        for m in 0..n {
            let proof = t.inclusion_proof(m as u64, n as u64).unwrap();
            assert_eq!(proof, naive_path(m, &d[..n]), "leaf {m} of {n}");
            let leaf = leaf_hash(&d[m]);
            assert!(verify_inclusion(m as u64, n as u64, &leaf, &proof, &root));
            // Another leaf, another index, another size or a damaged path: refused.
            let other = leaf_hash(b"not a leaf");
            assert!(!verify_inclusion(m as u64, n as u64, &other, &proof, &root));
            if n > 1 {
                assert!(!verify_inclusion(
                    ((m + 1) % n) as u64,
                    n as u64,
                    &leaf,
                    &proof,
                    &root
                ));
                assert!(!verify_inclusion(
                    m as u64,
                    n as u64,
                    &leaf,
                    &damaged(&proof),
                    &root
                ));
            }
            // Against the root of another size: refused.
            let bigger = mth(&d[..n + 1]);
            assert!(!verify_inclusion(
                m as u64,
                n as u64 + 1,
                &leaf,
                &proof,
                &bigger
            ));
        }
        assert_eq!(t.inclusion_proof(n as u64, n as u64), None);
    }
}

#[test]
fn consistency_proofs_match_the_definition_and_check() {
    let d = data(300);
    let t = tree_of(&d);
    let roots: Vec<Hash> = (0..=300).map(|n| mth(&d[..n])).collect();
    for n in 1..=300usize {
        for m in 1..=n {
            let proof = t.consistency_proof(m as u64, n as u64).unwrap();
            let expected = if m == n {
                vec![]
            } else {
                naive_subproof(m, &d[..n], true)
            };
            assert_eq!(proof, expected, "{m} → {n}");
            let (old, new) = (roots[m], roots[n]);
            assert!(
                verify_consistency(m as u64, n as u64, &old, &new, &proof),
                "{m} → {n}"
            );
            if m < n {
                assert!(!verify_consistency(
                    m as u64,
                    n as u64,
                    &old,
                    &new,
                    &damaged(&proof)
                ));
                assert!(!verify_consistency(m as u64, n as u64, &new, &new, &proof));
                assert!(!verify_consistency(m as u64, n as u64, &old, &old, &proof));
            }
        }
    }
    assert_eq!(t.consistency_proof(0, 3), None);
    assert_eq!(t.consistency_proof(4, 3), None);
    assert_eq!(t.consistency_proof(3, 301), None);
}

#[test]
fn the_empty_tree_and_one_leaf() {
    let t = Tree::new();
    assert!(t.is_empty());
    assert_eq!(t.root(0), Some(empty_root()));
    assert_eq!(t.root(1), None);
    assert_eq!(t.inclusion_proof(0, 0), None);
    let t = tree_of(&data(1));
    assert_eq!(t.root(1), Some(leaf_hash(b"leaf 0")));
    assert_eq!(t.leaf(0), Some(leaf_hash(b"leaf 0")));
    assert_eq!(t.leaf(1), None);
}

/// A tree started from the frontier of its first `s` leaves answers every root and proof
/// from `s` on as the whole tree does, and nothing before.
#[test]
fn a_tree_from_a_frontier_answers_as_the_whole_tree() {
    let d = data(70);
    let whole = tree_of(&d);
    for s in 0..=70u64 {
        let frontier = whole.frontier(s).unwrap();
        assert_eq!(frontier.len(), s.count_ones() as usize);
        let mut t = Tree::from_frontier(s, &frontier).unwrap();
        assert_eq!(t.len(), s);
        // The last leaf of the prefix is known when it is a subtree of its own (s odd).
        assert!(t.start() <= s && s - t.start() <= 1, "{s}: {}", t.start());
        for leaf in &d[s as usize..] {
            t.push(leaf_hash(leaf));
        }
        assert_eq!(t.len(), 70);
        for n in s..=70 {
            assert_eq!(t.root(n), whole.root(n), "root {n} from {s}");
            for m in s..n {
                assert_eq!(
                    t.inclusion_proof(m, n),
                    whole.inclusion_proof(m, n),
                    "{m} in {n} from {s}"
                );
            }
            if s > 0 {
                for old in s..=n {
                    assert_eq!(
                        t.consistency_proof(old, n),
                        whole.consistency_proof(old, n),
                        "{old} → {n} from {s}"
                    );
                }
            }
        }
        assert_eq!(t.frontier(70), whole.frontier(70));
        // Before the prefix's end, what is known is right, and leaves are gone.
        for n in 0..s {
            assert!(
                t.root(n).is_none() || t.root(n) == whole.root(n),
                "root {n} from {s}"
            );
        }
        for m in 0..t.start() {
            assert_eq!(t.leaf(m), None);
            assert_eq!(t.inclusion_proof(m, 70), None, "{m} from {s}");
        }
    }
    assert!(Tree::from_frontier(3, &[[0; 32]]).is_none());
}

#[test]
fn a_frontier_has_the_trees_roots_in_log_memory() {
    let d = data(300);
    let whole = tree_of(&d);
    let mut f = Frontier::new();
    assert_eq!(f.root(), empty_root());
    for (n, leaf) in d.iter().enumerate() {
        f.push(leaf_hash(leaf));
        let size = n as u64 + 1;
        assert_eq!(f.len(), size);
        assert_eq!(Some(f.root()), whole.root(size), "{size}");
        assert_eq!(Some(f.hashes().to_vec()), whole.frontier(size), "{size}");
        assert_eq!(
            Frontier::from_parts(size, f.hashes().to_vec()).as_ref(),
            Some(&f)
        );
    }
    assert_eq!(Frontier::from_parts(3, vec![[0; 32]]), None);
}
