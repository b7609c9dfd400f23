//! [`CompactIndex`]: the published form of the graph, its byte encoding, chunking and the
//! defensive decoder.
//!
//! # Layout (format version [`FORMAT_VERSION`])
//!
//! The index is one CBOR map (the envelope: a few integers and raw byte strings; typed CBOR
//! arrays decode ~40x slower, see the research notes) split into chunks for KV:
//!
//! | key | CBOR type | content |
//! |---|---|---|
//! | `format` | text | `"vectors-compact-index"` |
//! | `version` | uint | [`FORMAT_VERSION`]; checked first, anything else is refused |
//! | `dim`, `count`, `degree_max` | uint | vector dimension, items, neighbours per item at most |
//! | `featurizer_version` | uint | [`crate::FEATURIZER_VERSION`], or 0 for merchant vectors |
//! | `vectors` | bytes | `count * dim` x i8: `round(x * 127 / max abs x)` |
//! | `links` | bytes | per item `i` in order: varint degree, then its neighbour ids ascending: the first as zigzag varint of `id - i`, the others as varint `id - previous - 1` |
//! | `entry_points` | bytes | u32 LE item ids where searches start (at most [`ENTRY_POINTS_MAX`]) |
//!
//! No scales are stored: every vector is unit-norm, so item `i`'s dequantisation scale is
//! `1 / |q_i|`, computed at decode (4 bytes per item less to read; the re-rank then scores the
//! exact cosine between the query and the quantised vector).
//!
//! Varints are LEB128 (7 bits per byte, low first, at most 5 bytes, value < 2^32). The builder
//! numbers items in graph order (breadth-first from an entry point), so neighbours have nearby
//! ids and most deltas take one or two bytes.
//!
//! # Chunks and manifest
//!
//! [`CompactIndex::to_chunks`] cuts the envelope's bytes into chunks of at most
//! [`CHUNK_BYTES_DEFAULT`] (KV values may be 25 MiB; 4 MiB keeps each read modest) and writes a
//! CBOR manifest `{format, version, total_bytes, chunks: [{bytes, fnv64}]}`. Publish the manifest
//! under [`manifest_key`] and chunk `i` under [`chunk_key`]; the worker reads the manifest, then
//! the chunks, and calls [`CompactIndex::from_chunks`], which checks every length and checksum
//! (a half-published index, chunks of two publishes mixed, is refused) and then the whole index.
//!
//! # Defensive decoding
//!
//! Every length, id and varint is validated once at decode; bad bytes give
//! [`VectorError::Corrupt`] (never a panic or an out-of-bounds read), and the caller shows no
//! similar items. The search still uses checked access, so even a logic error cannot read out
//! of bounds.

use crate::VectorError;
use ciborium::Value;
use std::collections::BTreeSet;

/// The only format version this decoder reads.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "vectors-compact-index";
const MANIFEST_NAME: &str = "vectors-compact-index-manifest";
/// Default chunk size: well below the 25 MiB KV value limit.
pub const CHUNK_BYTES_DEFAULT: usize = 4 << 20;
/// Largest index accepted (the worker isolate has 128 MB in all).
pub const INDEX_BYTES_MAX: usize = 96 << 20;
/// Most chunks a manifest may list.
pub const CHUNKS_MAX: usize = 256;
/// Most items an index may hold.
pub const ITEMS_MAX: usize = 4_000_000;
/// Most neighbours per item.
pub const DEGREE_MAX_LIMIT: usize = 255;
/// Most entry points stored.
pub const ENTRY_POINTS_MAX: usize = 256;

/// KV key of an index's manifest, under the caller's prefix (e.g. the catalog snapshot key).
pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}/vectors/manifest")
}

/// KV key of an index's chunk `i` (0-based, `i < manifest.chunk_count()`).
pub fn chunk_key(prefix: &str, i: usize) -> String {
    format!("{prefix}/vectors/chunk/{i}")
}

/// A searchable index: int8 unit vectors, degree-capped neighbour lists,
/// entry points. Items are `0..count` (the caller maps positions to SKUs).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactIndex {
    pub(crate) dim: usize,
    pub(crate) count: usize,
    pub(crate) degree_max: usize,
    pub(crate) featurizer_version: u32,
    /// `1 / |q_i|` per item: derived at decode, not stored.
    pub(crate) scales: Vec<f32>,
    pub(crate) vectors: Vec<i8>,
    /// The encoded neighbour lists (see the layout); kept encoded, they are ~3x smaller than
    /// u32 lists and cheap to decode while searching.
    pub(crate) links: Vec<u8>,
    /// `count + 1` offsets into `links`: item `i`'s degree varint starts at `link_starts[i]`.
    /// Derived at decode, not stored.
    pub(crate) link_starts: Vec<u32>,
    pub(crate) entry_points: Vec<u32>,
}

/// The list of chunks an index was split into; published under [`manifest_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub total_bytes: usize,
    /// `(bytes, fnv64)` of each chunk, in order.
    pub chunks: Vec<(usize, u64)>,
}

impl Manifest {
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let chunks = self
            .chunks
            .iter()
            .map(|(len, hash)| {
                Value::Map(vec![
                    (
                        Value::Text("bytes".into()),
                        Value::Integer((*len as u64).into()),
                    ),
                    (Value::Text("fnv64".into()), Value::Integer((*hash).into())),
                ])
            })
            .collect();
        let value = Value::Map(vec![
            (
                Value::Text("format".into()),
                Value::Text(MANIFEST_NAME.into()),
            ),
            (
                Value::Text("version".into()),
                Value::Integer(FORMAT_VERSION.into()),
            ),
            (
                Value::Text("total_bytes".into()),
                Value::Integer((self.total_bytes as u64).into()),
            ),
            (Value::Text("chunks".into()), Value::Array(chunks)),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    /// Decodes and validates a manifest (chunk count, sizes, total).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VectorError> {
        if bytes.len() > 64 * 1024 {
            return Err(corrupt("manifest is larger than 64 KiB"));
        }
        let value: Value = ciborium::from_reader(bytes)
            .map_err(|e| corrupt(format!("manifest is not CBOR: {e}")))?;
        let mut map = Fields::new(value, "manifest")?;
        check_version(&mut map, MANIFEST_NAME)?;
        let total_bytes = map.uint("total_bytes", INDEX_BYTES_MAX as u64)? as usize;
        let Value::Array(items) = map.take("chunks")? else {
            return Err(corrupt("manifest field chunks is not an array"));
        };
        if items.is_empty() || items.len() > CHUNKS_MAX {
            return Err(corrupt(format!(
                "manifest lists {} chunks; expected 1..={CHUNKS_MAX}",
                items.len()
            )));
        }
        let mut chunks = Vec::with_capacity(items.len());
        let mut sum = 0usize;
        for item in items {
            let mut chunk = Fields::new(item, "manifest chunk")?;
            let len = chunk.uint("bytes", INDEX_BYTES_MAX as u64)? as usize;
            let hash = chunk.uint("fnv64", u64::MAX)?;
            // Checked: on wasm32 `usize` is 32 bits and 256 chunks of 96 MiB would overflow.
            sum = sum
                .checked_add(len)
                .ok_or_else(|| corrupt("manifest chunk sizes overflow"))?;
            chunks.push((len, hash));
        }
        if sum != total_bytes {
            return Err(corrupt(format!(
                "manifest chunks add up to {sum} bytes, total_bytes says {total_bytes}"
            )));
        }
        Ok(Self {
            total_bytes,
            chunks,
        })
    }
}

impl CompactIndex {
    /// Builds the index from normalised item vectors and neighbour lists (ids `< count`);
    /// lists longer than `degree_max` keep their first `degree_max` ids (put the closest first).
    /// Self-links and duplicates are dropped. Used by the builders; validates like the decoder.
    pub fn from_parts(
        dim: usize,
        vectors: &[f32],
        neighbours: &[Vec<u32>],
        entry_points: &[u32],
        degree_max: usize,
        featurizer_version: u32,
    ) -> Result<Self, VectorError> {
        let count = neighbours.len();
        if dim == 0 || vectors.len() != dim * count {
            return Err(VectorError::Invalid(format!(
                "{} vector values for {count} items of dimension {dim}",
                vectors.len()
            )));
        }
        if count == 0 || count > ITEMS_MAX {
            return Err(VectorError::Invalid(format!(
                "{count} items; an index holds 1..={ITEMS_MAX}"
            )));
        }
        if degree_max == 0 || degree_max > DEGREE_MAX_LIMIT {
            return Err(VectorError::Invalid(format!(
                "degree_max {degree_max} is outside 1..={DEGREE_MAX_LIMIT}"
            )));
        }
        let mut scales = Vec::with_capacity(count);
        let mut quantised = Vec::with_capacity(vectors.len());
        for v in vectors.chunks_exact(dim) {
            let (_, q) = quantise(v);
            scales.push(unit_scale(&q));
            quantised.extend_from_slice(&q);
        }
        let mut links = Vec::with_capacity(count * degree_max * 2);
        let mut kept: Vec<u32> = Vec::with_capacity(degree_max);
        for (i, list) in neighbours.iter().enumerate() {
            kept.clear();
            for &id in list {
                if kept.len() == degree_max {
                    break;
                }
                if id as usize >= count {
                    return Err(VectorError::Invalid(format!(
                        "item {i} links to {id}, but there are {count} items"
                    )));
                }
                if id as usize != i && !kept.contains(&id) {
                    kept.push(id);
                }
            }
            kept.sort_unstable();
            put_varint(&mut links, kept.len() as u32);
            let mut previous: Option<u32> = None;
            for &id in &kept {
                put_varint(
                    &mut links,
                    previous.map_or(zigzag(id as i64 - i as i64), |p| id - p - 1),
                );
                previous = Some(id);
            }
        }
        let mut entries: Vec<u32> = Vec::new();
        for &e in entry_points.iter().take(ENTRY_POINTS_MAX) {
            if e as usize >= count {
                return Err(VectorError::Invalid(format!(
                    "entry point {e} is not an item (count {count})"
                )));
            }
            if !entries.contains(&e) {
                entries.push(e);
            }
        }
        if entries.is_empty() {
            entries.push(0);
        }
        let link_starts = index_links(&links, count, degree_max)?;
        Ok(Self {
            dim,
            count,
            degree_max,
            featurizer_version,
            scales,
            vectors: quantised,
            links,
            link_starts,
            entry_points: entries,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn degree_max(&self) -> usize {
        self.degree_max
    }

    /// [`crate::FEATURIZER_VERSION`] the vectors were made with, or 0 for merchant vectors:
    /// a worker featurizing a query must use the same version.
    pub fn featurizer_version(&self) -> u32 {
        self.featurizer_version
    }

    pub fn entry_points(&self) -> &[u32] {
        &self.entry_points
    }

    /// Item `i`'s neighbours (ascending ids), if `i` exists.
    pub fn neighbours(&self, i: u32) -> Option<Neighbours<'_>> {
        let start = *self.link_starts.get(i as usize)? as usize;
        let end = *self.link_starts.get(i as usize + 1)? as usize;
        let bytes = self.links.get(start..end)?;
        let (degree, used) = get_varint(bytes)?;
        Some(Neighbours {
            bytes: bytes.get(used..)?,
            left: degree.min(DEGREE_MAX_LIMIT as u32),
            item: i,
            previous: None,
        })
    }

    /// Item `i`'s dequantised vector, if `i` exists.
    pub fn vector(&self, i: u32) -> Option<Vec<f32>> {
        let scale = *self.scales.get(i as usize)?;
        let q = self.quantised(i)?;
        Some(q.iter().map(|x| *x as f32 * scale).collect())
    }

    pub(crate) fn quantised(&self, i: u32) -> Option<&[i8]> {
        let start = (i as usize).checked_mul(self.dim)?;
        self.vectors.get(start..start.checked_add(self.dim)?)
    }

    /// Bytes of the encoded neighbour lists (the part the degree cap and renumbering shrink).
    pub fn encoded_links_len(&self) -> usize {
        self.links.len()
    }

    /// Bytes of the serialised index (what KV stores, before chunking).
    pub fn encoded_len(&self) -> usize {
        self.to_bytes().len()
    }

    /// The envelope's bytes (see the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries = Vec::with_capacity(self.entry_points.len() * 4);
        for e in &self.entry_points {
            entries.extend_from_slice(&e.to_le_bytes());
        }
        let vectors: Vec<u8> = self.vectors.iter().map(|x| *x as u8).collect();
        let uint = |x: usize| Value::Integer((x as u64).into());
        let value = Value::Map(vec![
            (
                Value::Text("format".into()),
                Value::Text(FORMAT_NAME.into()),
            ),
            (Value::Text("version".into()), uint(FORMAT_VERSION as usize)),
            (Value::Text("dim".into()), uint(self.dim)),
            (Value::Text("count".into()), uint(self.count)),
            (Value::Text("degree_max".into()), uint(self.degree_max)),
            (
                Value::Text("featurizer_version".into()),
                uint(self.featurizer_version as usize),
            ),
            (Value::Text("vectors".into()), Value::Bytes(vectors)),
            (
                Value::Text("links".into()),
                Value::Bytes(self.links.clone()),
            ),
            (Value::Text("entry_points".into()), Value::Bytes(entries)),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    /// Decodes and validates an envelope's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VectorError> {
        if bytes.len() > INDEX_BYTES_MAX {
            return Err(corrupt(format!(
                "index is {} bytes; at most {INDEX_BYTES_MAX} are accepted",
                bytes.len()
            )));
        }
        let value: Value =
            ciborium::from_reader(bytes).map_err(|e| corrupt(format!("index is not CBOR: {e}")))?;
        let mut map = Fields::new(value, "index")?;
        check_version(&mut map, FORMAT_NAME)?;
        let dim = map.uint("dim", crate::featurize::DIM_MAX as u64)? as usize;
        let count = map.uint("count", ITEMS_MAX as u64)? as usize;
        let degree_max = map.uint("degree_max", DEGREE_MAX_LIMIT as u64)? as usize;
        let featurizer_version = map.uint("featurizer_version", u32::MAX as u64)? as u32;
        if dim == 0 || count == 0 || degree_max == 0 {
            return Err(corrupt("dim, count and degree_max must be positive"));
        }
        // Checked products: on wasm32 `usize` is 32 bits, and count * dim can exceed it.
        let vector_len = count
            .checked_mul(dim)
            .filter(|n| *n <= INDEX_BYTES_MAX)
            .ok_or_else(|| {
                corrupt(format!(
                    "{count} items of {dim} dimensions exceed the size limit"
                ))
            })?;
        let vectors_bytes = map.bytes("vectors", vector_len)?;
        let links_max = count
            .saturating_mul(1 + degree_max * 5)
            .min(INDEX_BYTES_MAX);
        let links = map.bytes_at_most("links", links_max)?;
        let entry_bytes = map.bytes_at_most("entry_points", ENTRY_POINTS_MAX * 4)?;

        if entry_bytes.is_empty() || entry_bytes.len() % 4 != 0 {
            return Err(corrupt(format!(
                "entry_points is {} bytes; expected a positive multiple of 4",
                entry_bytes.len()
            )));
        }
        let mut entry_points = Vec::with_capacity(entry_bytes.len() / 4);
        for b in entry_bytes.chunks_exact(4) {
            let e = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if e as usize >= count {
                return Err(corrupt(format!("entry point {e} >= count {count}")));
            }
            entry_points.push(e);
        }
        let link_starts = index_links(&links, count, degree_max)?;
        let vectors: Vec<i8> = vectors_bytes.into_iter().map(|x| x as i8).collect();
        Ok(Self {
            dim,
            count,
            degree_max,
            featurizer_version,
            scales: vectors.chunks_exact(dim).map(unit_scale).collect(),
            vectors,
            links,
            link_starts,
            entry_points,
        })
    }

    /// Splits the encoded index into chunks of at most `chunk_bytes_max` (1 KiB..=24 MiB).
    pub fn to_chunks(
        &self,
        chunk_bytes_max: usize,
    ) -> Result<(Manifest, Vec<Vec<u8>>), VectorError> {
        if !(1024..=24 << 20).contains(&chunk_bytes_max) {
            return Err(VectorError::Invalid(format!(
                "chunk size {chunk_bytes_max} is outside 1 KiB..=24 MiB"
            )));
        }
        let bytes = self.to_bytes();
        if bytes.len() > INDEX_BYTES_MAX {
            return Err(VectorError::Invalid(format!(
                "the index is {} bytes; the worker accepts at most {INDEX_BYTES_MAX}",
                bytes.len()
            )));
        }
        let chunks: Vec<Vec<u8>> = bytes.chunks(chunk_bytes_max).map(|c| c.to_vec()).collect();
        if chunks.len() > CHUNKS_MAX {
            return Err(VectorError::Invalid(format!(
                "{} chunks needed; use chunks larger than {chunk_bytes_max} bytes",
                chunks.len()
            )));
        }
        let manifest = Manifest {
            total_bytes: bytes.len(),
            chunks: chunks
                .iter()
                .map(|c| (c.len(), crate::featurize::fnv1a64(0, c)))
                .collect(),
        };
        Ok((manifest, chunks))
    }

    /// Reassembles and validates an index from its manifest bytes and its chunks in order.
    pub fn from_chunks<C: AsRef<[u8]>>(manifest: &[u8], chunks: &[C]) -> Result<Self, VectorError> {
        let manifest = Manifest::from_bytes(manifest)?;
        if chunks.len() != manifest.chunks.len() {
            return Err(corrupt(format!(
                "manifest lists {} chunks, {} were given",
                manifest.chunks.len(),
                chunks.len()
            )));
        }
        let mut bytes = Vec::with_capacity(manifest.total_bytes);
        for (i, (chunk, (len, hash))) in chunks.iter().zip(&manifest.chunks).enumerate() {
            let chunk = chunk.as_ref();
            if chunk.len() != *len {
                return Err(corrupt(format!(
                    "chunk {i} is {} bytes, the manifest says {len}",
                    chunk.len()
                )));
            }
            if crate::featurize::fnv1a64(0, chunk) != *hash {
                return Err(corrupt(format!(
                    "chunk {i} does not match the manifest's checksum (mixed publishes?)"
                )));
            }
            bytes.extend_from_slice(chunk);
        }
        Self::from_bytes(&bytes)
    }
}

/// Iterator over one item's neighbour ids; stops at the first malformed byte (which the decoder
/// has already ruled out).
pub struct Neighbours<'a> {
    bytes: &'a [u8],
    left: u32,
    item: u32,
    previous: Option<u32>,
}

impl Iterator for Neighbours<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (delta, used) = get_varint(self.bytes)?;
        self.bytes = self.bytes.get(used..)?;
        let id = match self.previous {
            None => u32::try_from(self.item as i64 + unzigzag(delta)).ok()?,
            Some(p) => p.checked_add(delta)?.checked_add(1)?,
        };
        self.previous = Some(id);
        Some(id)
    }
}

/// `(scale, values)`: `values[j] = round(v[j] / scale)`, `scale = max |v| / 127`.
pub(crate) fn quantise(v: &[f32]) -> (f32, Vec<i8>) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (0.0, vec![0; v.len()]);
    }
    let scale = max / 127.0;
    let q = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (scale, q)
}

/// `1 / |q|`: the scale that makes a quantised unit vector unit again (0 for a zero vector).
fn unit_scale(q: &[i8]) -> f32 {
    let norm2: i64 = q.iter().map(|x| *x as i64 * *x as i64).sum();
    if norm2 == 0 {
        0.0
    } else {
        (1.0 / (norm2 as f64).sqrt()) as f32
    }
}

fn zigzag(x: i64) -> u32 {
    ((x << 1) ^ (x >> 63)) as u32
}

fn unzigzag(x: u32) -> i64 {
    (x >> 1) as i64 ^ -((x & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut x: u32) {
    while x >= 0x80 {
        out.push((x as u8 & 0x7f) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// `(value, bytes used)`, or `None` if truncated, longer than 5 bytes or above u32.
pub(crate) fn get_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut x: u64 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        x |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(x).ok().map(|x| (x, i + 1));
        }
    }
    None
}

/// Walks every neighbour list once: checks degrees, ids, order and that the bytes are used
/// exactly; returns where each item's list starts.
fn index_links(links: &[u8], count: usize, degree_max: usize) -> Result<Vec<u32>, VectorError> {
    if links.len() > u32::MAX as usize {
        return Err(corrupt("links are longer than 4 GiB"));
    }
    let mut starts = Vec::with_capacity(count + 1);
    let mut at = 0usize;
    for i in 0..count {
        starts.push(at as u32);
        let rest = links.get(at..).unwrap_or(&[]);
        let (degree, used) = get_varint(rest)
            .ok_or_else(|| corrupt(format!("item {i}: links truncated or bad degree")))?;
        if degree as usize > degree_max {
            return Err(corrupt(format!(
                "item {i} has {degree} neighbours; degree_max is {degree_max}"
            )));
        }
        at += used;
        let mut previous: Option<u32> = None;
        for _ in 0..degree {
            let rest = links.get(at..).unwrap_or(&[]);
            let (delta, used) = get_varint(rest)
                .ok_or_else(|| corrupt(format!("item {i}: neighbour list truncated")))?;
            at += used;
            let id = match previous {
                None => u32::try_from(i as i64 + unzigzag(delta)).ok(),
                Some(p) => p.checked_add(delta).and_then(|x| x.checked_add(1)),
            };
            match id {
                Some(id) if (id as usize) < count => previous = Some(id),
                _ => {
                    return Err(corrupt(format!(
                        "item {i} links to an id beyond count {count}"
                    )))
                }
            }
        }
    }
    if at != links.len() {
        return Err(corrupt(format!(
            "{} bytes left over after the last neighbour list",
            links.len() - at
        )));
    }
    starts.push(at as u32);
    Ok(starts)
}

fn corrupt(msg: impl Into<String>) -> VectorError {
    VectorError::Corrupt(msg.into())
}

/// The fields of a decoded CBOR map, taken out by name (each at most once).
struct Fields {
    what: &'static str,
    fields: Vec<(Value, Value)>,
}

impl Fields {
    fn new(value: Value, what: &'static str) -> Result<Self, VectorError> {
        match value {
            Value::Map(fields) => {
                let mut names = BTreeSet::new();
                for (k, _) in &fields {
                    if let Value::Text(k) = k {
                        if !names.insert(k.clone()) {
                            return Err(corrupt(format!("{what} has field {k} twice")));
                        }
                    }
                }
                Ok(Self { what, fields })
            }
            _ => Err(corrupt(format!("{what} is not a CBOR map"))),
        }
    }

    fn take(&mut self, name: &str) -> Result<Value, VectorError> {
        let at = self
            .fields
            .iter()
            .position(|(k, _)| matches!(k, Value::Text(k) if k == name))
            .ok_or_else(|| corrupt(format!("{} has no field {name}", self.what)))?;
        Ok(self.fields.swap_remove(at).1)
    }

    fn uint(&mut self, name: &str, max: u64) -> Result<u64, VectorError> {
        let what = self.what;
        match self.take(name)? {
            Value::Integer(i) => match u64::try_from(i) {
                Ok(x) if x <= max => Ok(x),
                _ => Err(corrupt(format!("{what} field {name} is outside 0..={max}"))),
            },
            _ => Err(corrupt(format!("{what} field {name} is not an integer"))),
        }
    }

    fn bytes_at_most(&mut self, name: &str, max: usize) -> Result<Vec<u8>, VectorError> {
        let what = self.what;
        match self.take(name)? {
            Value::Bytes(b) if b.len() <= max => Ok(b),
            Value::Bytes(b) => Err(corrupt(format!(
                "{what} field {name} is {} bytes; at most {max} expected",
                b.len()
            ))),
            _ => Err(corrupt(format!("{what} field {name} is not a byte string"))),
        }
    }

    fn bytes(&mut self, name: &str, len: usize) -> Result<Vec<u8>, VectorError> {
        let b = self.bytes_at_most(name, len)?;
        if b.len() != len {
            return Err(corrupt(format!(
                "{} field {name} is {} bytes; {len} expected",
                self.what,
                b.len()
            )));
        }
        Ok(b)
    }
}

fn check_version(map: &mut Fields, format: &str) -> Result<(), VectorError> {
    match map.take("format")? {
        Value::Text(f) if f == format => {}
        _ => return Err(corrupt(format!("{} is not a {format}", map.what))),
    }
    let version = map.uint("version", u32::MAX as u64)? as u32;
    if version != FORMAT_VERSION {
        return Err(VectorError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for x in [0u32, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, x);
            assert_eq!(get_varint(&b), Some((x, b.len())));
            assert_eq!(get_varint(&b[..b.len() - 1]), None);
        }
        assert_eq!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
            None,
            "above u32"
        );
        assert_eq!(
            get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            None,
            "6 bytes"
        );
    }

    #[test]
    fn zigzag_round_trips() {
        for x in [0i64, 1, -1, 63, -64, 1_000_000, -4_000_000] {
            assert_eq!(unzigzag(zigzag(x)), x);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn quantise_keeps_direction() {
        let v = [0.5f32, -0.25, 0.0, 0.8];
        let (s, q) = quantise(&v);
        for (x, y) in v.iter().zip(&q) {
            assert!((x - *y as f32 * s).abs() <= s / 2.0 + 1e-6);
        }
        assert_eq!(q[3], 127);
    }
}
