//! Product text and attributes → a fixed-dimension, L2-normalised f32 vector; merchant vectors.
//!
//! Why a hashed featurizer and not a neural embedding: it runs anywhere (publish time natively,
//! the worker in wasm, tests), needs no model file, and is deterministic bit for bit across
//! platforms, so "similar items" never changes between two publishes of the same catalog.
//! Merchants who have better vectors (an embedding model of their own) supply them instead
//! through [`VectorSet::push`], which validates them.
//!
//! # Definition (version [`FEATURIZER_VERSION`])
//!
//! With `D` the dimension ([`DIM_DEFAULT`] = 64) and `P` = [`PRICE_BANDS`] = 8:
//!
//! 1. Text is lower-cased and split into words on every non-alphanumeric character. Each field
//!    keeps at most [`WORDS_PER_FIELD_MAX`] words of at most [`WORD_BYTES_MAX`] bytes.
//! 2. Features, each hashed with 64-bit FNV-1a over `(namespace byte, bytes)`: bucket
//!    `h % (D - P)`, sign `+` if bit 63 of `h` is 0 else `-` (signed feature hashing, so
//!    collisions cancel in expectation instead of piling up):
//!    * word unigrams, weight 1.0; word bigrams, weight 0.5; character 3-grams of `^word$`,
//!      weight 0.25 (they make "shirt"/"shirts" and small typos overlap);
//!    * title, tags and description share one word namespace (a tag "linen" matches a title
//!      "Linen shirt"), with field weights 1.0 / 0.8 / 0.3;
//!    * the category's words (field weight 0.6) in the same namespace, plus the whole category
//!      string as one token in its own namespace (weight 1.5): items of one category cluster;
//!    * the whole vendor string in its own namespace (weight 0.7).
//! 3. The text part (the first `D - P` dimensions) is L2-normalised.
//! 4. Price band `b = clamp(floor(log2(max(price_minor, 1) / 100)), 0, P - 1)` (one band per
//!    doubling from 1.00 in the currency's major unit): dimension `D - P + b` gets
//!    [`PRICE_WEIGHT`], its neighbouring bands half of it, so a 40.00 and a 70.00 item are
//!    closer than a 40.00 and a 900.00 one.
//! 5. The whole vector is L2-normalised (the price part guarantees a non-zero norm even for an
//!    item without text). Similarity is the dot product (cosine).
//!
//! Why 64 dimensions: the index stores one byte per dimension per item, and at 64 the vector is
//! about as large as the compressed graph links. The index's recall (measured in this space)
//! is the same at 64 and 128 (0.984 / 0.982 at ef 32, 10k items). What the hashing costs in
//! quality, `vector-bench` reports as the overlap of the exact top-10 with a 1024-d (nearly
//! collision-free) featurization: 0.57 at 64-d, 0.70 at 128-d on the synthetic catalog (many
//! of its items tie, so that overlap is pessimistic), 0.27 at 64-d on Debian's package texts.
//! Catalogs with rich text should try 128-d; those that need better than hashing supply
//! merchant vectors.

use crate::VectorError;

/// Bump when the definition above changes: vectors of two versions are not comparable.
pub const FEATURIZER_VERSION: u32 = 1;
/// Default dimension; see the module doc for why.
pub const DIM_DEFAULT: usize = 64;
/// Smallest dimension [`Featurizer::new`] accepts: the price bands plus some text buckets.
pub const DIM_MIN: usize = 16;
/// Largest dimension accepted for featurized and merchant vectors (bounds memory per item).
pub const DIM_MAX: usize = 4096;
/// Number of log2 price bands at the end of each featurized vector.
pub const PRICE_BANDS: usize = 8;
/// Weight of the price band relative to the (unit-norm) text part.
pub const PRICE_WEIGHT: f32 = 0.35;
/// Words kept per field; bounds the work per item whatever the merchant writes.
pub const WORDS_PER_FIELD_MAX: usize = 128;
/// Longer words are cut to this many bytes (at a char boundary).
pub const WORD_BYTES_MAX: usize = 32;
/// Bytes of the description looked at (at a char boundary).
pub const DESCRIPTION_BYTES_MAX: usize = 1024;

const WEIGHT_UNIGRAM: f32 = 1.0;
const WEIGHT_BIGRAM: f32 = 0.5;
const WEIGHT_TRIGRAM: f32 = 0.25;
const FIELD_TITLE: f32 = 1.0;
const FIELD_TAGS: f32 = 0.8;
const FIELD_DESCRIPTION: f32 = 0.3;
const FIELD_CATEGORY_WORDS: f32 = 0.6;
const FIELD_CATEGORY_WHOLE: f32 = 1.5;
const FIELD_VENDOR_WHOLE: f32 = 0.7;

// Hash namespaces: one byte mixed in first, so equal strings in different roles differ.
const NS_WORD: u8 = 1;
const NS_BIGRAM: u8 = 2;
const NS_TRIGRAM: u8 = 3;
const NS_CATEGORY: u8 = 4;
const NS_VENDOR: u8 = 5;

/// The fields the featurizer reads, as plain borrowed data (no dependency on edge-core, which
/// depends on this crate).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProductText<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub category: &'a str,
    pub vendor: &'a str,
    pub tags: &'a [String],
    /// Price in the currency's minor unit (cents); only its log2 band is used.
    pub price_minor: i64,
}

/// A featurizer of a fixed dimension. Cheap to copy; holds no state besides the dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Featurizer {
    dim: usize,
}

impl Default for Featurizer {
    fn default() -> Self {
        Self { dim: DIM_DEFAULT }
    }
}

impl Featurizer {
    /// A featurizer producing `dim`-dimensional vectors (`DIM_MIN..=DIM_MAX`).
    pub fn new(dim: usize) -> Result<Self, VectorError> {
        if !(DIM_MIN..=DIM_MAX).contains(&dim) {
            return Err(VectorError::Invalid(format!(
                "featurizer dimension {dim} is outside {DIM_MIN}..={DIM_MAX}"
            )));
        }
        Ok(Self { dim })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The item's vector: `dim` finite values with L2 norm 1 (see the module doc).
    pub fn featurize(&self, item: &ProductText<'_>) -> Vec<f32> {
        let mut out = vec![0.0f32; self.dim];
        self.featurize_into(item, &mut out);
        out
    }

    /// As [`Self::featurize`], into a caller's buffer of length `dim` (allocation-free apart
    /// from one small word buffer). A buffer of another length is resized.
    pub fn featurize_into(&self, item: &ProductText<'_>, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.dim, 0.0);
        let text_dim = self.dim - PRICE_BANDS;
        let (text, price) = out.split_at_mut(text_dim);
        let mut words: Vec<String> = Vec::with_capacity(WORDS_PER_FIELD_MAX);

        add_text(text, &mut words, item.title, FIELD_TITLE);
        for tag in item.tags.iter().take(WORDS_PER_FIELD_MAX) {
            add_text(text, &mut words, tag, FIELD_TAGS);
        }
        add_text(
            text,
            &mut words,
            prefix_at_char(item.description, DESCRIPTION_BYTES_MAX),
            FIELD_DESCRIPTION,
        );
        add_text(text, &mut words, item.category, FIELD_CATEGORY_WORDS);
        let category = normalise_whole(item.category);
        if !category.is_empty() {
            add_feature(text, NS_CATEGORY, category.as_bytes(), FIELD_CATEGORY_WHOLE);
        }
        let vendor = normalise_whole(item.vendor);
        if !vendor.is_empty() {
            add_feature(text, NS_VENDOR, vendor.as_bytes(), FIELD_VENDOR_WHOLE);
        }
        normalise(text);

        let band = price_band(item.price_minor);
        price[band] = PRICE_WEIGHT;
        if band > 0 {
            price[band - 1] = PRICE_WEIGHT * 0.5;
        }
        if band + 1 < PRICE_BANDS {
            price[band + 1] = PRICE_WEIGHT * 0.5;
        }
        normalise(out);
    }
}

/// The price band of a price in minor units: one band per doubling from 100 minor units.
pub fn price_band(price_minor: i64) -> usize {
    let major_ish = (price_minor.max(1) as u64) / 100;
    if major_ish == 0 {
        return 0;
    }
    (major_ish.ilog2() as usize).min(PRICE_BANDS - 1)
}

/// A set of item vectors of one dimension, L2-normalised, ready for the index build.
///
/// Item `i` is the `i`-th vector pushed; the caller keeps the item → SKU list.
#[derive(Clone, Debug)]
pub struct VectorSet {
    dim: usize,
    data: Vec<f32>,
}

impl VectorSet {
    /// An empty set of `dim`-dimensional vectors (`1..=DIM_MAX`).
    pub fn new(dim: usize) -> Result<Self, VectorError> {
        if dim == 0 || dim > DIM_MAX {
            return Err(VectorError::Invalid(format!(
                "vector dimension {dim} is outside 1..={DIM_MAX}"
            )));
        }
        Ok(Self {
            dim,
            data: Vec::new(),
        })
    }

    /// Validates and adds one vector (featurized or merchant-supplied); `label` (e.g. the SKU)
    /// names the item in the error. Values must be finite, the norm non-zero and the dimension
    /// the set's. The stored vector is L2-normalised. Returns the item's position.
    pub fn push(&mut self, label: &str, vector: &[f32]) -> Result<u32, VectorError> {
        let position = self.len();
        if vector.len() != self.dim {
            return Err(VectorError::BadItemVector {
                item: label.to_owned(),
                reason: format!(
                    "has {} dimensions, the other items have {}",
                    vector.len(),
                    self.dim
                ),
            });
        }
        if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
            return Err(VectorError::BadItemVector {
                item: label.to_owned(),
                reason: format!("value {at} is {} (not finite)", vector[at]),
            });
        }
        let norm = vector
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt();
        if norm.is_nan() || norm <= 1e-30 || !norm.is_finite() {
            return Err(VectorError::BadItemVector {
                item: label.to_owned(),
                reason: format!("has norm {norm}; a zero vector has no direction to compare"),
            });
        }
        if position >= u32::MAX as usize {
            return Err(VectorError::Invalid("more than u32::MAX items".into()));
        }
        self.data
            .extend(vector.iter().map(|x| ((*x as f64) / norm) as f32));
        Ok(position as u32)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Item `i`'s normalised vector, if it exists.
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        self.data.get(start..start.checked_add(self.dim)?)
    }

    /// All vectors, item after item.
    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }
}

/// Adds a field's word unigrams, bigrams and character 3-grams, scaled by `field_weight`.
fn add_text(out: &mut [f32], words: &mut Vec<String>, text: &str, field_weight: f32) {
    words.clear();
    for raw in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(WORDS_PER_FIELD_MAX)
    {
        let lower = raw.to_lowercase();
        words.push(prefix_at_char(&lower, WORD_BYTES_MAX).to_owned());
    }
    let mut pair = Vec::with_capacity(2 * WORD_BYTES_MAX + 1);
    let mut padded = Vec::with_capacity(WORD_BYTES_MAX + 2);
    for (i, word) in words.iter().enumerate() {
        add_feature(out, NS_WORD, word.as_bytes(), WEIGHT_UNIGRAM * field_weight);
        if let Some(next) = words.get(i + 1) {
            pair.clear();
            pair.extend_from_slice(word.as_bytes());
            pair.push(b' ');
            pair.extend_from_slice(next.as_bytes());
            add_feature(out, NS_BIGRAM, &pair, WEIGHT_BIGRAM * field_weight);
        }
        // Character 3-grams over chars (not bytes), so non-ASCII words work the same way.
        padded.clear();
        padded.push('^');
        padded.extend(word.chars());
        padded.push('$');
        let mut gram = [0u8; 12];
        for window in padded.windows(3) {
            let mut len = 0;
            for c in window {
                len += c.encode_utf8(&mut gram[len..]).len();
            }
            add_feature(out, NS_TRIGRAM, &gram[..len], WEIGHT_TRIGRAM * field_weight);
        }
    }
}

fn add_feature(out: &mut [f32], namespace: u8, bytes: &[u8], weight: f32) {
    let h = fnv1a64(namespace, bytes);
    let bucket = (h % out.len() as u64) as usize;
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    out[bucket] += sign * weight;
}

/// 64-bit FNV-1a: tiny, portable and stable across platforms and releases.
pub(crate) fn fnv1a64(namespace: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(&namespace).chain(bytes) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bit mixes poorly; fold the high half in so the sign bit is usable.
    h ^ (h >> 29).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A whole-string token: lower-cased words joined by one space.
fn normalise_whole(s: &str) -> String {
    let mut out = String::new();
    for word in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(WORDS_PER_FIELD_MAX)
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word.to_lowercase());
    }
    out
}

fn prefix_at_char(s: &str, bytes_max: usize) -> &str {
    if s.len() <= bytes_max {
        return s;
    }
    let mut end = bytes_max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(
        title: &'a str,
        category: &'a str,
        tags: &'a [String],
        price: i64,
    ) -> ProductText<'a> {
        ProductText {
            title,
            description: "",
            category,
            vendor: "",
            tags,
            price_minor: price,
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn price_bands_double() {
        assert_eq!(price_band(-5), 0);
        assert_eq!(price_band(0), 0);
        assert_eq!(price_band(199), 0);
        assert_eq!(price_band(200), 1);
        assert_eq!(price_band(4_000), 5);
        assert_eq!(price_band(i64::MAX), PRICE_BANDS - 1);
    }

    #[test]
    fn unit_norm_and_finite_even_for_empty_items() {
        let f = Featurizer::default();
        for it in [
            item("", "", &[], 0),
            item("Linen shirt", "Shirts", &[], 4500),
        ] {
            let v = f.featurize(&it);
            assert_eq!(v.len(), DIM_DEFAULT);
            assert!(v.iter().all(|x| x.is_finite()));
            assert!((dot(&v, &v) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn rejects_out_of_range_dimension() {
        assert!(Featurizer::new(DIM_MIN - 1).is_err());
        assert!(Featurizer::new(DIM_MAX + 1).is_err());
        assert!(Featurizer::new(128).is_ok());
    }

    #[test]
    fn long_and_unicode_text_is_bounded_and_safe() {
        let long = "ünïcødé ".repeat(10_000) + &"x".repeat(100_000);
        let f = Featurizer::default();
        let v = f.featurize(&ProductText {
            title: &long,
            description: &long,
            ..Default::default()
        });
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
