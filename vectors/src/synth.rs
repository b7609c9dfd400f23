//! A deterministic synthetic product catalog, for tests and `vector-bench`.
//!
//! Why synthetic: the recall tests need a dataset that anyone can regenerate bit for bit, and
//! the benchmark needs 100k product-like items without a download. Items are drawn from 24
//! categories, each with its own nouns, shared adjectives/materials/colours, a few vendors per
//! category and a category-typical price, so there are real clusters (same category), near
//! duplicates (same noun and material) and noise, like a storefront.

/// One generated product, owning its fields (see [`crate::ProductText`] to featurize it).
#[derive(Clone, Debug, PartialEq)]
pub struct SynthProduct {
    pub title: String,
    pub description: String,
    pub category: String,
    pub vendor: String,
    pub tags: Vec<String>,
    pub price_minor: i64,
}

impl SynthProduct {
    pub fn text(&self) -> crate::ProductText<'_> {
        crate::ProductText {
            title: &self.title,
            description: &self.description,
            category: &self.category,
            vendor: &self.vendor,
            tags: &self.tags,
            price_minor: self.price_minor,
        }
    }
}

const CATEGORIES: [(&str, &[&str], i64); 24] = [
    (
        "Shirts",
        &["shirt", "blouse", "tee", "polo", "tunic"],
        3_000,
    ),
    (
        "Trousers",
        &["trousers", "jeans", "chinos", "shorts", "joggers"],
        5_000,
    ),
    (
        "Shoes",
        &["sneakers", "boots", "loafers", "sandals", "trainers"],
        8_000,
    ),
    (
        "Bags",
        &["backpack", "tote", "satchel", "duffel", "wallet"],
        6_000,
    ),
    (
        "Kitchen",
        &["pan", "knife", "kettle", "colander", "whisk", "skillet"],
        4_000,
    ),
    (
        "Coffee",
        &["beans", "grinder", "dripper", "espresso", "filter"],
        2_500,
    ),
    (
        "Tea",
        &["sencha", "oolong", "teapot", "matcha", "infuser"],
        1_800,
    ),
    (
        "Bedding",
        &["duvet", "pillow", "sheet", "blanket", "quilt"],
        7_000,
    ),
    (
        "Lighting",
        &["lamp", "pendant", "bulb", "lantern", "sconce"],
        6_500,
    ),
    (
        "Garden",
        &["planter", "hose", "trowel", "seeds", "pruner"],
        2_200,
    ),
    (
        "Toys",
        &["puzzle", "blocks", "kite", "doll", "robot"],
        2_000,
    ),
    (
        "Books",
        &["novel", "cookbook", "atlas", "notebook", "journal"],
        1_500,
    ),
    (
        "Audio",
        &["headphones", "speaker", "earbuds", "turntable", "amplifier"],
        12_000,
    ),
    (
        "Cameras",
        &["camera", "lens", "tripod", "strap", "flash"],
        40_000,
    ),
    (
        "Cycling",
        &["helmet", "saddle", "pump", "lights", "gloves"],
        4_500,
    ),
    (
        "Running",
        &["vest", "socks", "cap", "bottle", "belt"],
        2_800,
    ),
    (
        "Camping",
        &["tent", "stove", "sleeping bag", "headlamp", "mat"],
        9_000,
    ),
    (
        "Beauty",
        &["soap", "balm", "serum", "shampoo", "lotion"],
        1_600,
    ),
    (
        "Jewellery",
        &["ring", "necklace", "bracelet", "earrings", "pendant"],
        9_500,
    ),
    (
        "Watches",
        &["watch", "chronograph", "strap", "dial", "smartwatch"],
        20_000,
    ),
    (
        "Desk",
        &["chair", "desk", "monitor stand", "organiser", "lamp"],
        15_000,
    ),
    (
        "Stationery",
        &["pen", "pencil", "notebook", "ink", "marker"],
        900,
    ),
    ("Pets", &["leash", "collar", "bowl", "bed", "toy"], 2_400),
    (
        "Baby",
        &["onesie", "bib", "stroller", "rattle", "blanket"],
        3_500,
    ),
];
const ADJECTIVES: [&str; 16] = [
    "classic",
    "slim",
    "organic",
    "vintage",
    "compact",
    "deluxe",
    "everyday",
    "travel",
    "heavy duty",
    "lightweight",
    "handmade",
    "modern",
    "rustic",
    "premium",
    "soft",
    "waterproof",
];
const MATERIALS: [&str; 12] = [
    "linen",
    "cotton",
    "wool",
    "leather",
    "steel",
    "bamboo",
    "ceramic",
    "oak",
    "canvas",
    "recycled",
    "cast iron",
    "silk",
];
const COLOURS: [&str; 10] = [
    "black", "white", "navy", "olive", "sand", "red", "grey", "green", "blue", "amber",
];
const VENDOR_STEMS: [&str; 12] = [
    "North", "Alder", "Copper", "Fable", "Harbor", "Juniper", "Kestrel", "Lumen", "Marlow",
    "Oriel", "Quarry", "Tidal",
];

/// Deterministic 64-bit generator (splitmix64); the same seed gives the same catalog everywhere.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; slight modulo bias is fine here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `count` products from `seed`.
pub fn catalog(count: usize, seed: u64) -> Vec<SynthProduct> {
    let mut rng = SplitMix(seed);
    (0..count).map(|_| product(&mut rng)).collect()
}

fn product(rng: &mut SplitMix) -> SynthProduct {
    // Skewed category popularity, like real catalogs.
    let c = (rng.below(CATEGORIES.len()) * rng.below(CATEGORIES.len())) / CATEGORIES.len();
    let (category, nouns, price_typical) = CATEGORIES[c];
    let noun = nouns[rng.below(nouns.len())];
    let adjective = ADJECTIVES[rng.below(ADJECTIVES.len())];
    let material = MATERIALS[rng.below(MATERIALS.len())];
    let colour = COLOURS[rng.below(COLOURS.len())];
    let title = match rng.below(4) {
        0 => format!("{adjective} {material} {noun}"),
        1 => format!("{colour} {material} {noun}"),
        2 => format!("{adjective} {noun} in {colour}"),
        _ => format!("{noun} {}", 100 + rng.below(900)),
    };
    let vendor = format!(
        "{} {}",
        VENDOR_STEMS[(c + rng.below(3)) % VENDOR_STEMS.len()],
        category
    );
    let mut tags = vec![material.to_owned(), colour.to_owned()];
    if rng.below(3) == 0 {
        tags.push(adjective.to_owned());
    }
    tags.sort();
    tags.dedup();
    let description = format!(
        "A {adjective} {noun} made of {material}, finished in {colour}. Part of our {} range.",
        category.to_lowercase()
    );
    // Log-uniform within a factor of 4 either way of the category's typical price.
    let factor = 4f64.powf(rng.unit() * 2.0 - 1.0);
    let price_minor = ((price_typical as f64 * factor) as i64 / 10) * 10 + 9;
    SynthProduct {
        title,
        description,
        category: category.to_owned(),
        vendor,
        tags,
        price_minor,
    }
}
