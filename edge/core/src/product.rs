//! Products and the merchant catalog file.
//!
//! The catalog file is JSON (`{"currency": ..., "products": [...]}`, see `origin/data/README.md`);
//! [`Catalog::from_json`] validates it whole and reports every bad entry, so nothing is published
//! from an invalid catalog.

use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Longest SKU accepted; keeps KV keys and shard requests small.
pub const SKU_LEN_MAX: usize = 64;

/// A stock keeping unit: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > SKU_LEN_MAX {
            return Err(format!("SKU must be 1 to {SKU_LEN_MAX} characters long"));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
        {
            return Err(format!(
                "SKU contains {bad:?}; allowed are letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> String {
        sku.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product as stored in KV and shown on its page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Sku,
    pub title: String,
    pub description: String,
    pub price: Money,
    pub category: String,
    /// Site-relative (`/images/x.svg`) or absolute `https://` image URL.
    pub image: String,
    #[serde(default)]
    pub vendor: String,
    /// Lower-case tags, sorted and unique.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Option names (`["Size", "Color"]`) when the product comes in variants.
    #[serde(default)]
    pub options: Vec<String>,
    /// The variants, each its own stock unit. Empty: the product is its only stock unit, and
    /// `price` is its price; otherwise `price` is the lowest variant price.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

/// One purchasable version of a product: its own SKU, stock and price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub sku: Sku,
    /// One value per product option, in the product's option order.
    pub options: Vec<String>,
    pub price: Money,
}

impl Variant {
    /// "M / Blue".
    pub fn label(&self) -> String {
        self.options.join(" / ")
    }
}

impl Product {
    /// The SKUs stock is kept for: the variants', or the product's own.
    pub fn stock_units(&self) -> Vec<&Sku> {
        if self.variants.is_empty() {
            vec![&self.sku]
        } else {
            self.variants.iter().map(|v| &v.sku).collect()
        }
    }

    /// Price of a stock unit of this product.
    pub fn price_of(&self, sku: &Sku) -> Option<&Money> {
        if self.variants.is_empty() {
            (sku == &self.sku).then_some(&self.price)
        } else {
            self.variants
                .iter()
                .find(|v| &v.sku == sku)
                .map(|v| &v.price)
        }
    }
}

/// What a product grid needs of a product; the product index holds one per product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSummary {
    pub sku: Sku,
    pub title: String,
    pub price: Money,
    pub category: String,
    pub image: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The price with the automatic promotions running now, when they take something off
    /// (set when a page is served, never published: promotions start and end on their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_price: Option<Money>,
}

impl From<&Product> for ProductSummary {
    fn from(p: &Product) -> Self {
        Self {
            sku: p.sku.clone(),
            title: p.title.clone(),
            price: p.price.clone(),
            category: p.category.clone(),
            image: p.image.clone(),
            vendor: p.vendor.clone(),
            tags: p.tags.clone(),
            sale_price: None,
        }
    }
}

/// One entry of the merchant catalog file: the product plus the stock it starts with.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CatalogEntry {
    pub sku: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Price in minor units of the catalog's currency (products without variants).
    #[serde(default)]
    pub price_minor: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    pub category: String,
    pub image: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Units on hand at first publish (products without variants).
    #[serde(default)]
    pub stock: Option<i64>,
    /// Option names, when the product has variants.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub variants: Vec<VariantEntry>,
    /// The merchant's own embedding of the product for similar items (any dimension, the same
    /// for every product; all products or none). Without it the publisher featurizes the text.
    #[serde(default)]
    pub vector: Option<Vec<f64>>,
}

/// Longest merchant vector accepted.
pub const VECTOR_DIM_MAX: usize = 4_096;

/// A merchant vector's problem, if any: empty, too long, not finite, or zero.
fn vector_problem(vector: &[f64]) -> Option<String> {
    if vector.is_empty() || vector.len() > VECTOR_DIM_MAX {
        return Some(format!(
            "must have 1 to {VECTOR_DIM_MAX} numbers, has {}",
            vector.len()
        ));
    }
    if let Some(bad) = vector
        .iter()
        .position(|x| !x.is_finite() || x.abs() > f64::from(f32::MAX))
    {
        return Some(format!("number {bad} is not a finite 32-bit float"));
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Some("is all zeros: it points nowhere".into());
    }
    None
}

/// A variant in the catalog file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct VariantEntry {
    pub sku: String,
    pub options: Vec<String>,
    pub price_minor: i64,
    pub stock: i64,
}

/// Option names a product may have (Shopify's limit).
pub const OPTIONS_PER_PRODUCT_MAX: usize = 3;
/// Variants a product may have.
pub const VARIANTS_PER_PRODUCT_MAX: usize = 100;

/// The merchant catalog file as written by hand or exported.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CatalogFile {
    /// Default currency for entries that name none.
    pub currency: String,
    pub products: Vec<CatalogEntry>,
}

/// One problem in a catalog file: which entry, which field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogProblem {
    /// Zero-based position in `products`, or `None` for the file as a whole.
    pub entry: Option<usize>,
    /// 1-based line in the source text where the problem is, when parsed from text.
    #[serde(default)]
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        match self.entry {
            Some(i) => write!(f, "products[{i}].{}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// A validated catalog: every SKU unique and well formed, every price and image sane.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    pub products: Vec<Product>,
    /// Initial stock of every stock unit (product or variant SKU), in catalog order.
    pub levels: Vec<(Sku, u32)>,
    /// Products trending in the shop's recent behaviour (from the origin's analytics), best
    /// first: published with the snapshot, the edge's best-sellers. Empty: catalog order.
    pub trending: Vec<Sku>,
    /// Products bought together with each product (co-purchases, then co-views, from the
    /// origin's orders and analytics), most often first: published with the snapshot.
    pub together: std::collections::BTreeMap<Sku, Vec<Sku>>,
    /// The merchant's vectors, one per product in catalog order, or empty (featurized text).
    pub vectors: Vec<Vec<f32>>,
    /// The merchant's promotions and shipping rate (the file's `promotions` and `shipping`),
    /// published with the snapshot.
    pub promotions: crate::promo::PromotionBook,
}

impl Catalog {
    /// The initial stock of a stock unit.
    pub fn initial_stock(&self, sku: &Sku) -> Option<u32> {
        self.levels.iter().find(|(s, _)| s == sku).map(|(_, n)| *n)
    }
}

/// Tags one product may carry.
pub const TAGS_PER_PRODUCT_MAX: usize = 32;

/// Entries a catalog may hold; a bound on every publish.
pub const CATALOG_PRODUCTS_MAX: usize = 100_000;

impl Catalog {
    /// Parses and validates a catalog file, reporting every problem found, not just the first.
    /// Parses and validates catalog JSON; every problem carries the line of the entry at fault.
    pub fn from_json(text: &str) -> Result<Self, Vec<CatalogProblem>> {
        #[derive(Deserialize)]
        struct RawFile<'a> {
            currency: String,
            #[serde(borrow)]
            products: Vec<&'a serde_json::value::RawValue>,
            /// The promotions (see [`crate::promo`]), each parsed on its own for its line.
            #[serde(default, borrow)]
            promotions: Vec<&'a serde_json::value::RawValue>,
            #[serde(default)]
            shipping: crate::promo::ShippingRate,
        }
        let file_problem = |e: serde_json::Error| CatalogProblem {
            entry: None,
            line: Some(e.line()),
            field: "catalog".into(),
            message: format!("not a valid catalog file: {e}"),
        };
        let raw: RawFile = serde_json::from_str(text).map_err(|e| vec![file_problem(e)])?;
        // Each entry is a slice of `text`: its offset gives its line.
        let line_of = |raw: &serde_json::value::RawValue| {
            let offset = (raw.get().as_ptr() as usize)
                .saturating_sub(text.as_ptr() as usize)
                .min(text.len());
            1 + text.as_bytes()[..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        };
        let mut problems = Vec::new();
        let mut entries = Vec::with_capacity(raw.products.len());
        let mut lines = Vec::with_capacity(raw.products.len());
        for (i, value) in raw.products.iter().enumerate() {
            let line = line_of(value);
            match serde_json::from_str::<CatalogEntry>(value.get()) {
                Ok(entry) => {
                    entries.push(entry);
                    lines.push((i, line));
                }
                Err(e) => problems.push(CatalogProblem {
                    entry: Some(i),
                    line: Some(line + e.line().saturating_sub(1)),
                    field: "entry".into(),
                    message: e.to_string(),
                }),
            }
        }
        let promotion_entries: Vec<(&str, usize)> = raw
            .promotions
            .iter()
            .map(|v| (v.get(), line_of(v)))
            .collect();
        let currency = raw.currency.clone();
        let file = CatalogFile {
            currency: raw.currency,
            products: entries,
        };
        let products = match Self::from_file(file) {
            Ok(catalog) if problems.is_empty() => Ok(catalog),
            Ok(_) => Err(problems),
            Err(mut found) => {
                // `from_file` numbered the entries it saw; map them back to positions and lines.
                for p in &mut found {
                    if let Some(k) = p.entry {
                        let (i, line) = lines[k];
                        p.entry = Some(i);
                        p.line = Some(line);
                    }
                }
                problems.extend(found);
                problems.sort_by_key(|p| (p.entry, p.line));
                Err(problems)
            }
        };
        let valid = products.as_ref().ok().map(|c| c.products.as_slice());
        let promotions =
            crate::promo::book_from_catalog(&currency, raw.shipping, &promotion_entries, valid);
        match (products, promotions) {
            (Ok(mut catalog), Ok(book)) => {
                catalog.promotions = book;
                Ok(catalog)
            }
            (Ok(_), Err(problems)) => Err(problems),
            (Err(problems), Ok(_)) => Err(problems),
            (Err(mut problems), Err(more)) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }

    pub fn from_file(file: CatalogFile) -> Result<Self, Vec<CatalogProblem>> {
        let mut problems = Vec::new();
        let mut file_problem = |field: &str, message: String| {
            problems.push(CatalogProblem {
                entry: None,
                line: None,
                field: field.into(),
                message,
            })
        };
        if let Err(e) = Money::new(0, &file.currency).validate() {
            file_problem("currency", e);
        }
        if file.products.len() > CATALOG_PRODUCTS_MAX {
            file_problem(
                "products",
                format!("more than {CATALOG_PRODUCTS_MAX} products"),
            );
        }
        let mut seen = HashSet::new();
        let mut products = Vec::with_capacity(file.products.len());
        let mut levels = Vec::with_capacity(file.products.len());
        let entries_with_vectors = file.products.iter().filter(|e| e.vector.is_some()).count();
        let all_or_none = entries_with_vectors == 0 || entries_with_vectors == file.products.len();
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        let mut vector_dim = None;
        for (i, entry) in file.products.into_iter().enumerate() {
            let mut bad = |field: &str, message: String| {
                problems.push(CatalogProblem {
                    entry: Some(i),
                    line: None,
                    field: field.into(),
                    message,
                })
            };
            let sku = match Sku::parse(&entry.sku) {
                Ok(sku) if crate::promo::is_usage_sku(&sku) => {
                    bad("sku", format!("{sku}: SKUs starting with {:?} are reserved for promotion usage counters", crate::promo::USAGE_SKU_PREFIX));
                    None
                }
                Ok(sku) if !seen.insert(sku.clone()) => {
                    bad("sku", format!("duplicate SKU {sku}"));
                    None
                }
                Ok(sku) => Some(sku),
                Err(e) => {
                    bad("sku", e);
                    None
                }
            };
            match &entry.vector {
                None if !all_or_none => bad(
                    "vector",
                    format!("{entries_with_vectors} products have a vector: every product needs one, or none"),
                ),
                None => {}
                Some(vector) => match vector_problem(vector) {
                    Some(problem) => bad("vector", format!("vector {problem}")),
                    None if *vector_dim.get_or_insert(vector.len()) != vector.len() => bad(
                        "vector",
                        format!("vector has {} numbers; the catalog's first vector has {}", vector.len(), vector_dim.unwrap_or(0)),
                    ),
                    None => vectors.push(vector.iter().map(|&x| x as f32).collect()),
                },
            }
            if entry.title.trim().is_empty() {
                bad("title", "title is empty".into());
            }
            if entry.category.trim().is_empty() {
                bad("category", "category is empty".into());
            }
            let currency = entry.currency.unwrap_or_else(|| file.currency.clone());
            if let Err(e) = Money::new(0, &currency).validate() {
                bad("currency", e);
            }
            if let Err(e) = check_image_url(&entry.image) {
                bad("image", e);
            }
            let mut tags: Vec<String> = entry
                .tags
                .iter()
                .map(|t| t.trim().to_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            tags.sort();
            tags.dedup();
            if tags.len() > TAGS_PER_PRODUCT_MAX {
                bad(
                    "tags",
                    format!("{} tags; at most {TAGS_PER_PRODUCT_MAX}", tags.len()),
                );
            }
            let price =
                |field: &str, minor: Option<i64>, bad: &mut dyn FnMut(&str, String)| match minor {
                    None => {
                        bad(field, "price is missing".into());
                        None
                    }
                    Some(m) => u64::try_from(m)
                        .map_err(|_| bad(field, format!("price {m} is negative")))
                        .ok(),
                };
            let units =
                |field: &str, stock: Option<i64>, bad: &mut dyn FnMut(&str, String)| match stock {
                    None => {
                        bad(field, "stock is missing".into());
                        None
                    }
                    Some(n) => u32::try_from(n)
                        .map_err(|_| bad(field, format!("stock {n} is not a count of units")))
                        .ok(),
                };
            let mut variants = Vec::with_capacity(entry.variants.len());
            let mut unit_levels = Vec::new();
            let product_price;
            if entry.variants.is_empty() {
                product_price = price("price_minor", entry.price_minor, &mut bad);
                if let (Some(sku), Some(n)) = (&sku, units("stock", entry.stock, &mut bad)) {
                    unit_levels.push((sku.clone(), n));
                }
            } else {
                if entry.options.is_empty() || entry.options.len() > OPTIONS_PER_PRODUCT_MAX {
                    bad("options", format!("a product with variants needs 1 to {OPTIONS_PER_PRODUCT_MAX} option names"));
                }
                if entry.variants.len() > VARIANTS_PER_PRODUCT_MAX {
                    bad(
                        "variants",
                        format!(
                            "{} variants; at most {VARIANTS_PER_PRODUCT_MAX}",
                            entry.variants.len()
                        ),
                    );
                }
                let mut combinations = HashSet::new();
                for (k, v) in entry.variants.into_iter().enumerate() {
                    let field = |name: &str| format!("variants[{k}].{name}");
                    // A variant may share the product's SKU (Shopify's first variant does).
                    let vsku = match Sku::parse(&v.sku) {
                        Ok(vsku) if Some(&vsku) == sku.as_ref() => Some(vsku),
                        Ok(vsku) if crate::promo::is_usage_sku(&vsku) => {
                            bad(&field("sku"), format!("{vsku}: SKUs starting with {:?} are reserved for promotion usage counters", crate::promo::USAGE_SKU_PREFIX));
                            None
                        }
                        Ok(vsku) if !seen.insert(vsku.clone()) => {
                            bad(&field("sku"), format!("duplicate SKU {vsku}"));
                            None
                        }
                        Ok(vsku) => Some(vsku),
                        Err(e) => {
                            bad(&field("sku"), e);
                            None
                        }
                    };
                    if v.options.len() != entry.options.len() {
                        bad(
                            &field("options"),
                            format!(
                                "{} option values for {} options",
                                v.options.len(),
                                entry.options.len()
                            ),
                        );
                    } else if !combinations.insert(v.options.clone()) {
                        bad(
                            &field("options"),
                            format!("{:?} is listed twice", v.options.join(" / ")),
                        );
                    }
                    let vprice = price(&field("price_minor"), Some(v.price_minor), &mut bad);
                    let vunits = units(&field("stock"), Some(v.stock), &mut bad);
                    if let (Some(vsku), Some(minor), Some(n)) = (vsku, vprice, vunits) {
                        unit_levels.push((vsku.clone(), n));
                        variants.push(Variant {
                            sku: vsku,
                            options: v.options,
                            price: Money {
                                minor,
                                currency: currency.clone(),
                            },
                        });
                    }
                }
                product_price = variants.iter().map(|v| v.price.minor).min();
            }
            if let (Some(sku), Some(minor)) = (sku, product_price) {
                products.push(Product {
                    sku,
                    title: entry.title,
                    description: entry.description,
                    price: Money { minor, currency },
                    category: entry.category.trim().to_owned(),
                    image: entry.image,
                    vendor: entry.vendor.trim().to_owned(),
                    tags,
                    options: if variants.is_empty() {
                        Vec::new()
                    } else {
                        entry.options
                    },
                    variants,
                });
                levels.extend(unit_levels);
            }
        }
        if problems.is_empty() {
            let promotions = crate::promo::PromotionBook {
                currency: file.currency.clone(),
                ..Default::default()
            };
            Ok(Self {
                products,
                levels,
                trending: Vec::new(),
                together: Default::default(),
                vectors,
                promotions,
            })
        } else {
            Err(problems)
        }
    }
}

/// Accepts site-relative paths (`/images/a.svg`) and `https://host/...` URLs without spaces.
fn check_image_url(url: &str) -> Result<(), String> {
    let well_formed = if let Some(rest) = url.strip_prefix("https://") {
        rest.split('/').next().is_some_and(|host| !host.is_empty())
    } else {
        url.starts_with('/') && !url.starts_with("//")
    };
    if well_formed && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(format!(
            "image {url:?} is neither a site path (/...) nor an https:// URL"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sku: &str) -> serde_json::Value {
        serde_json::json!({
            "sku": sku, "title": "Mug", "description": "A mug.", "price_minor": 1200,
            "category": "kitchen", "image": "/images/kitchen.svg", "stock": 5
        })
    }

    fn catalog(entries: Vec<serde_json::Value>) -> String {
        serde_json::json!({ "currency": "USD", "products": entries }).to_string()
    }

    #[test]
    fn merchant_vectors_are_validated_all_or_none() {
        let with = |sku: &str, vector: serde_json::Value| {
            let mut e = entry(sku);
            e["vector"] = vector;
            e
        };
        let good = Catalog::from_json(&catalog(vec![
            with("A-1", serde_json::json!([0.1, 0.2])),
            with("B-2", serde_json::json!([1, 0])),
        ]))
        .unwrap();
        assert_eq!(good.vectors, vec![vec![0.1f32, 0.2], vec![1.0, 0.0]]);
        assert!(Catalog::from_json(&catalog(vec![entry("A-1")]))
            .unwrap()
            .vectors
            .is_empty());
        for (products, why) in [
            (
                vec![with("A-1", serde_json::json!([0.1, 0.2])), entry("B-2")],
                "every product needs one",
            ),
            (
                vec![
                    with("A-1", serde_json::json!([0.1, 0.2])),
                    with("B-2", serde_json::json!([1, 0, 0])),
                ],
                "first vector has 2",
            ),
            (vec![with("A-1", serde_json::json!([0, 0]))], "all zeros"),
            (vec![with("A-1", serde_json::json!([]))], "1 to 4096"),
            (vec![with("A-1", serde_json::json!([1e300]))], "32-bit"),
        ] {
            let problems = Catalog::from_json(&catalog(products)).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == "vector" && p.message.contains(why) && p.line.is_some()),
                "{why}: {problems:?}"
            );
        }
    }

    #[test]
    fn sku_accepts_the_documented_alphabet_only() {
        assert!(Sku::parse("MUG-001_a.b").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("slash/inside").is_err());
        assert!(Sku::parse(&"x".repeat(SKU_LEN_MAX + 1)).is_err());
        assert!(serde_json::from_str::<Sku>("\"bad sku\"").is_err());
    }

    #[test]
    fn valid_catalog_keeps_order_and_stock() {
        let c = Catalog::from_json(&catalog(vec![entry("A-1"), entry("B-2")])).unwrap();
        assert_eq!(c.products.len(), 2);
        assert_eq!(c.products[1].sku.as_str(), "B-2");
        assert_eq!(c.products[0].price, Money::new(1200, "USD"));
        assert_eq!(
            c.levels.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            vec![5, 5]
        );
    }

    #[test]
    fn reports_every_problem_with_entry_and_field() {
        let mut negative = entry("C-3");
        negative["price_minor"] = (-5).into();
        let mut bad_image = entry("D-4");
        bad_image["image"] = "ftp://x/y.png".into();
        let mut bad_currency = entry("E-5");
        bad_currency["currency"] = "dollars".into();
        let problems = Catalog::from_json(&catalog(vec![
            entry("A-1"),
            entry("A-1"),
            entry("bad sku"),
            negative,
            bad_image,
            bad_currency,
        ]))
        .unwrap_err();
        let found: Vec<(Option<usize>, &str)> = problems
            .iter()
            .map(|p| (p.entry, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (Some(1), "sku"),
                (Some(2), "sku"),
                (Some(3), "price_minor"),
                (Some(4), "image"),
                (Some(5), "currency")
            ]
        );
        assert!(problems[0].to_string().contains("duplicate SKU A-1"));
    }

    #[test]
    fn problems_name_the_line_of_their_entry() {
        let text = "{\"currency\": \"USD\", \"products\": [\n".to_string()
            + &entry("A-1").to_string()
            + ",\n"
            + &entry("A-1").to_string()
            + ",\n{\"sku\": \"B\", \"title\": 5}\n]}";
        let problems = Catalog::from_json(&text).unwrap_err();
        let found: Vec<(Option<usize>, Option<usize>, &str)> = problems
            .iter()
            .map(|p| (p.entry, p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![(Some(1), Some(3), "sku"), (Some(2), Some(4), "entry")]
        );
        assert!(
            problems[0]
                .to_string()
                .starts_with("line 3: products[1].sku: duplicate SKU"),
            "{}",
            problems[0]
        );
        let broken =
            Catalog::from_json("{\"currency\": \"USD\",\n\"products\": [\n{]").unwrap_err();
        assert_eq!(broken[0].line, Some(3));
    }

    #[test]
    fn variants_are_stock_units_with_their_own_prices() {
        let mut tee = entry("TEE");
        tee["options"] = serde_json::json!(["Size"]);
        tee["variants"] = serde_json::json!([
            {"sku": "TEE", "options": ["S"], "price_minor": 2500, "stock": 1},
            {"sku": "TEE-M", "options": ["M"], "price_minor": 2400, "stock": 2},
        ]);
        let c = Catalog::from_json(&catalog(vec![tee, entry("MUG")])).unwrap();
        let tee = &c.products[0];
        assert_eq!(
            tee.price.minor, 2400,
            "a product with variants shows its lowest price"
        );
        assert_eq!(
            tee.stock_units()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["TEE", "TEE-M"]
        );
        assert_eq!(
            tee.price_of(&Sku::parse("TEE-M").unwrap()).unwrap().minor,
            2400
        );
        assert_eq!(tee.variants[1].label(), "M");
        let levels: Vec<(&str, u32)> = c.levels.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(levels, [("TEE", 1), ("TEE-M", 2), ("MUG", 5)]);
    }

    #[test]
    fn bad_variants_are_reported_by_position() {
        let mut tee = entry("TEE");
        tee["options"] = serde_json::json!(["Size"]);
        tee["variants"] = serde_json::json!([
            {"sku": "MUG", "options": ["S"], "price_minor": 2500, "stock": 1},
            {"sku": "TEE-M", "options": ["M", "Red"], "price_minor": -1, "stock": 2},
            {"sku": "TEE-L", "options": ["S"], "price_minor": 1, "stock": -3},
        ]);
        let problems = Catalog::from_json(&catalog(vec![entry("MUG"), tee])).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "variants[0].sku",
                "variants[1].options",
                "variants[1].price_minor",
                "variants[2].options",
                "variants[2].stock"
            ]
        );
        assert!(problems.iter().all(|p| p.entry == Some(1)));
    }

    #[test]
    fn malformed_json_is_one_file_level_problem() {
        let problems = Catalog::from_json("{\"currency\": \"USD\", \"products\": [").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].entry, None);
    }

    #[test]
    fn image_urls_must_be_site_paths_or_https() {
        assert!(check_image_url("/images/a.svg").is_ok());
        assert!(check_image_url("https://cdn.example.com/a.png").is_ok());
        for bad in [
            "images/a.svg",
            "//evil.example/a.png",
            "http://x/a.png",
            "https:///a",
            "/a b.png",
        ] {
            assert!(check_image_url(bad).is_err(), "{bad} accepted");
        }
    }
}
