//! Byte layouts of RocksDB keys, every column family's (graphs included). Every integer is
//! fixed-width big-endian so that the byte order of keys is the numeric order of their fields and
//! prefix range scans come back sorted. docs/STORAGE.md lists each column family and its keys.

/// Column families, one per kind of record.
pub const CF_META: &str = "meta";
pub const CF_WEIGHTS: &str = "weights";
pub const CF_DOCS: &str = "docs";
pub const CF_TOKEN_MAJOR: &str = "token_major";
pub const CF_FEATURE_MAJOR: &str = "feature_major_by_ingest";
pub const CF_STATS: &str = "stats";
pub const CF_LABELS: &str = "labels";
pub const CF_GRAPHS: &str = "graphs";

pub const ALL_CFS: [&str; 8] = [
    CF_META,
    CF_WEIGHTS,
    CF_DOCS,
    CF_TOKEN_MAJOR,
    CF_FEATURE_MAJOR,
    CF_STATS,
    CF_LABELS,
    CF_GRAPHS,
];

/// Format versions 2 and 3 kept feature-major blocks here, keyed `dict | feature | ingest |
/// chunk` ([`feature_major_key_v3`]). A read-only open of such a store reads it as it is; a
/// writable open moves its blocks into [`CF_FEATURE_MAJOR`] and drops it.
pub const CF_FEATURE_MAJOR_V3: &str = "feature_major";

/// Keys of the `meta` column family (values are JSON, or u32 BE for the version).
pub const META_FORMAT_VERSION: &[u8] = b"format_version";
pub const META_CATALOG: &[u8] = b"catalog";
/// u32 BE: the id the next ingest gets, persisted before it writes anything.
pub const META_NEXT_INGEST_ID: &[u8] = b"next_ingest_id";
/// JSON array of the vocabulary's token strings.
pub const META_VOCAB_TOKENS: &[u8] = b"vocab_tokens";

/// The owner id used for the vocabulary matrix in the weights column family.
pub const VOCAB_OWNER: u32 = u32::MAX;

/// Which tensor a weights chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tensor {
    WEnc = 1,
    BEnc = 2,
    WDec = 3,
    BDec = 4,
    Threshold = 5,
    Vocab = 6,
}

/// `owner u32 | tensor u8 | chunk u32`.
pub fn weights_key(owner: u32, tensor: Tensor, chunk: u32) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..4].copy_from_slice(&owner.to_be_bytes());
    k[4] = tensor as u8;
    k[5..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// `owner u32 | tensor u8`: the prefix of every chunk of one tensor.
pub fn weights_prefix(owner: u32, tensor: Tensor) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&owner.to_be_bytes());
    k[4] = tensor as u8;
    k
}

/// `doc u32`.
pub fn doc_key(doc: u32) -> [u8; 4] {
    doc.to_be_bytes()
}

/// Token-major block: `dict u32 | doc u32 | ingest u32 | chunk u32`.
pub fn token_major_key(dict: u32, doc: u32, ingest: u32, chunk: u32) -> [u8; 16] {
    four(dict, doc, ingest, chunk)
}

/// Feature-major block: `dict u32 | ingest u32 | feature u32 | chunk u32`. The ingest comes
/// before the feature so that one ingest's blocks are one key range, overlapping no other
/// ingest's: RocksDB files them into the bottom level as they are and never compacts them
/// again. (Feature first, every ingest's table file spanned the whole column family, and each
/// background compaction rewrote it all: about 15% of a medium ingest's CPU.)
pub fn feature_major_key(dict: u32, ingest: u32, feature: u32, chunk: u32) -> [u8; 16] {
    four(dict, ingest, feature, chunk)
}

/// `dict u32 | ingest u32 | feature u32`: the prefix of one feature's blocks from one ingest.
pub fn feature_major_prefix(dict: u32, ingest: u32, feature: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k.copy_from_slice(&four(dict, ingest, feature, 0)[..12]);
    k
}

/// Version 3's feature-major key ([`CF_FEATURE_MAJOR_V3`]): `dict u32 | feature u32 | ingest
/// u32 | chunk u32`. (Only tests write them now; the upgrade reads them field by field.)
#[cfg(test)]
pub fn feature_major_key_v3(dict: u32, feature: u32, ingest: u32, chunk: u32) -> [u8; 16] {
    four(dict, feature, ingest, chunk)
}

/// `dict u32 | x u32`: the prefix of every block of one (dict, doc) or (dict, feature).
pub fn pair_prefix(dict: u32, x: u32) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&dict.to_be_bytes());
    k[4..].copy_from_slice(&x.to_be_bytes());
    k
}

/// Stats and labels: `dict u32 | feature u32`.
pub fn feature_key(dict: u32, feature: u32) -> [u8; 8] {
    pair_prefix(dict, feature)
}

/// The ingest id of a block's key in column family `cf` (token-major, feature-major, or
/// version 3's feature-major).
pub fn block_ingest_id(cf: &str, key: &[u8]) -> Option<u32> {
    field(key, if cf == CF_FEATURE_MAJOR { 1 } else { 2 })
}

/// The feature of a block's key in a feature-major column family (current or version 3's).
pub fn block_feature(cf: &str, key: &[u8]) -> Option<u32> {
    field(key, if cf == CF_FEATURE_MAJOR { 2 } else { 1 })
}

/// Reads the `i`-th big-endian u32 field of a key.
pub fn field(key: &[u8], i: usize) -> Option<u32> {
    key.get(4 * i..4 * i + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The records of a graph in the `graphs` column family (the tag byte after the graph id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GraphTag {
    /// `gid | 'h'`: the header.
    Header = b'h',
    /// `gid | 'n' | node u32`: one node.
    Node = b'n',
    /// `gid | 'e' | chunk u32`: up to 65,536 edges, in the graph's edge order.
    Edges = b'e',
}

/// `gid u32 | tag u8 [| n u32]`: a graph record's key, or (without `n`) the prefix of all
/// records of that tag.
pub fn graph_key(graph: u32, tag: GraphTag, n: Option<u32>) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.extend_from_slice(&graph.to_be_bytes());
    k.push(tag as u8);
    if let Some(n) = n {
        k.extend_from_slice(&n.to_be_bytes());
    }
    k
}

/// `[gid, gid | 0xFF)`: every key of one graph, whatever its tag (format 1's `'i'` and `'o'`
/// adjacency keys included).
pub fn graph_range(graph: u32) -> (Vec<u8>, Vec<u8>) {
    let from = graph.to_be_bytes().to_vec();
    let mut to = from.clone();
    to.push(0xFF);
    (from, to)
}

fn four(a: u32, b: u32, c: u32, d: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&a.to_be_bytes());
    k[4..8].copy_from_slice(&b.to_be_bytes());
    k[8..12].copy_from_slice(&c.to_be_bytes());
    k[12..].copy_from_slice(&d.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_numeric_order() {
        let a = feature_major_key(1, 7, 255, 0);
        let b = feature_major_key(1, 7, 256, 0);
        let c = feature_major_key(1, 8, 0, 0);
        let d = feature_major_key(2, 0, 0, 0);
        assert!(a < b && b < c && c < d);
        assert!(b.starts_with(&feature_major_prefix(1, 7, 256)));
        assert_eq!(block_feature(CF_FEATURE_MAJOR, &b), Some(256));
        let k = feature_major_key(1, 77, 2, 3);
        assert_eq!(block_ingest_id(CF_FEATURE_MAJOR, &k), Some(77));
        let v3 = feature_major_key_v3(1, 2, 77, 3);
        assert_eq!(block_ingest_id(CF_FEATURE_MAJOR_V3, &v3), Some(77));
        assert_eq!(block_feature(CF_FEATURE_MAJOR_V3, &v3), Some(2));
        let t = token_major_key(1, 5, 77, 0);
        assert_eq!(block_ingest_id(CF_TOKEN_MAJOR, &t), Some(77));
    }

    /// The byte layouts of docs/STORAGE.md, pinned.
    #[test]
    fn block_keys_are_laid_out_as_documented() {
        let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(&feature_major_key(1, 2, 3, 4)),
            "00000001000000020000000300000004"
        );
        assert_eq!(
            hex(&feature_major_key_v3(1, 3, 2, 4)),
            "00000001000000030000000200000004"
        );
        assert_eq!(
            hex(&feature_major_prefix(1, 2, 3)),
            "000000010000000200000003"
        );
        assert_eq!(hex(&graph_key(7, GraphTag::Header, None)), "0000000768");
        assert_eq!(
            hex(&graph_key(7, GraphTag::Node, Some(2))),
            "000000076e00000002"
        );
        assert_eq!(
            hex(&graph_key(7, GraphTag::Edges, Some(0))),
            "000000076500000000"
        );
        let (from, to) = graph_range(7);
        assert_eq!(
            (hex(&from), hex(&to)),
            ("00000007".into(), "00000007ff".into())
        );
    }
}
