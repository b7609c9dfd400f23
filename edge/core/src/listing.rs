//! Category listings: slugs, facets (price band, vendor, tag), filters, sorting and pages.
//!
//! Publish time stores each category's products (in catalog order) with its unfiltered facet
//! counts; the edge filters, sorts and pages that list per request. Everything here is pure.

use crate::product::ProductSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Products per listing page.
pub const PAGE_SIZE: usize = 24;
/// Tags shown as facets (the most used first).
pub const TAG_FACETS_MAX: usize = 20;
/// Longest query value accepted for a filter.
const FILTER_LEN_MAX: usize = 100;

/// URL form of a category name: lower-case ASCII letters and digits joined by '-'.
pub fn slug(name: &str) -> String {
    slug_chars(name).collect()
}

/// Whether two names have the same [`slug`], without building either.
pub fn same_slug(a: &str, b: &str) -> bool {
    slug_chars(a).eq(slug_chars(b))
}

/// The characters of `name`'s [`slug`]: lower-case ASCII letters and digits, each run of
/// anything else one `-` between them (none at either end); `other` when that leaves nothing.
fn slug_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    let (mut started, mut gap) = (false, false);
    let mut chars = name
        .chars()
        .flat_map(char::to_lowercase)
        .flat_map(move |c| {
            if c.is_ascii_alphanumeric() {
                let dash = started && gap;
                (started, gap) = (true, false);
                [dash.then_some('-'), Some(c)]
            } else {
                gap = true;
                [None, None]
            }
        })
        .flatten()
        .peekable();
    let empty = chars.peek().is_none();
    chars.chain(if empty { "other" } else { "" }.chars())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryInfo {
    pub slug: String,
    pub name: String,
    pub products: u32,
}

/// Categories in name order, each with its product count.
pub fn categories(products: &[ProductSummary]) -> Vec<CategoryInfo> {
    let mut by_slug: BTreeMap<String, CategoryInfo> = BTreeMap::new();
    for p in products {
        let slug = slug(&p.category);
        by_slug
            .entry(slug.clone())
            .or_insert_with(|| CategoryInfo {
                slug,
                name: p.category.clone(),
                products: 0,
            })
            .products += 1;
    }
    let mut list: Vec<CategoryInfo> = by_slug.into_values().collect();
    list.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()));
    list
}

/// Price bands for the price facet, in minor units of a two-decimal currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PriceBand {
    Under25,
    From25To50,
    From50To100,
    From100To200,
    Over200,
}

impl PriceBand {
    pub const ALL: [PriceBand; 5] = [
        PriceBand::Under25,
        PriceBand::From25To50,
        PriceBand::From50To100,
        PriceBand::From100To200,
        PriceBand::Over200,
    ];

    pub fn of(minor: u64) -> Self {
        match minor {
            0..2_500 => PriceBand::Under25,
            2_500..5_000 => PriceBand::From25To50,
            5_000..10_000 => PriceBand::From50To100,
            10_000..20_000 => PriceBand::From100To200,
            _ => PriceBand::Over200,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            PriceBand::Under25 => "0-25",
            PriceBand::From25To50 => "25-50",
            PriceBand::From50To100 => "50-100",
            PriceBand::From100To200 => "100-200",
            PriceBand::Over200 => "200-",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PriceBand::Under25 => "Under 25",
            PriceBand::From25To50 => "25 to 50",
            PriceBand::From50To100 => "50 to 100",
            PriceBand::From100To200 => "100 to 200",
            PriceBand::Over200 => "200 and up",
        }
    }

    pub fn from_slug(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.slug() == s)
    }
}

/// Facet values with the number of products each would show.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    pub price: Vec<(PriceBand, u32)>,
    pub vendors: Vec<(String, u32)>,
    pub tags: Vec<(String, u32)>,
}

/// Facets of `products` at their list prices (what publishing counts).
pub fn facets<'a>(products: impl IntoIterator<Item = &'a ProductSummary>) -> Facets {
    facets_priced(products.into_iter().map(|p| (p, p.price.minor)))
}

/// Facets of products each paired with the price (minor units) its price band counts.
fn facets_priced<'a>(products: impl IntoIterator<Item = (&'a ProductSummary, u64)>) -> Facets {
    let mut price: BTreeMap<PriceBand, u32> = BTreeMap::new();
    let mut vendors: BTreeMap<&str, u32> = BTreeMap::new();
    let mut tags: BTreeMap<&str, u32> = BTreeMap::new();
    for (p, shelf_minor) in products {
        *price.entry(PriceBand::of(shelf_minor)).or_default() += 1;
        if !p.vendor.is_empty() {
            *vendors.entry(&p.vendor).or_default() += 1;
        }
        for tag in &p.tags {
            *tags.entry(tag).or_default() += 1;
        }
    }
    let mut tags: Vec<(String, u32)> = tags.into_iter().map(|(t, n)| (t.to_owned(), n)).collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    tags.truncate(TAG_FACETS_MAX);
    Facets {
        price: price.into_iter().collect(),
        vendors: vendors
            .into_iter()
            .map(|(v, n)| (v.to_owned(), n))
            .collect(),
        tags,
    }
}

/// `facets` (counted at list prices) with each product whose shelf price is in another band
/// moved to that band.
fn repriced(facets: &Facets, products: &[(&ProductSummary, u64)]) -> Facets {
    let mut price: BTreeMap<PriceBand, u32> = facets.price.iter().copied().collect();
    for (p, shelf_minor) in products {
        let (listed, shown) = (PriceBand::of(p.price.minor), PriceBand::of(*shelf_minor));
        if listed != shown {
            if let Some(n) = price.get_mut(&listed) {
                *n = n.saturating_sub(1);
            }
            *price.entry(shown).or_default() += 1;
        }
    }
    price.retain(|_, n| *n > 0);
    Facets {
        price: price.into_iter().collect(),
        ..facets.clone()
    }
}

/// A category's products as published: catalog order, with unfiltered facet counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryListing {
    pub category: CategoryInfo,
    pub products: Vec<ProductSummary>,
    pub facets: Facets,
}

/// Every category's listing, for publishing.
pub fn category_listings(products: &[ProductSummary]) -> Vec<CategoryListing> {
    categories(products)
        .into_iter()
        .map(|category| {
            let members: Vec<ProductSummary> = products
                .iter()
                .filter(|p| slug(&p.category) == category.slug)
                .cloned()
                .collect();
            let facets = facets(&members);
            CategoryListing {
                category,
                products: members,
                facets,
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    /// The merchant's order (search: best match first).
    #[default]
    Featured,
    PriceAsc,
    PriceDesc,
    Title,
}

impl Sort {
    pub const ALL: [Sort; 4] = [Sort::Featured, Sort::PriceAsc, Sort::PriceDesc, Sort::Title];

    pub fn slug(self) -> &'static str {
        match self {
            Sort::Featured => "featured",
            Sort::PriceAsc => "price-asc",
            Sort::PriceDesc => "price-desc",
            Sort::Title => "title",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Featured => "Featured",
            Sort::PriceAsc => "Price: low to high",
            Sort::PriceDesc => "Price: high to low",
            Sort::Title => "Name",
        }
    }
}

/// Filters, sort and page of a listing, as carried in the URL query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingQuery {
    pub price: Option<PriceBand>,
    pub vendor: Option<String>,
    pub tag: Option<String>,
    pub sort: Sort,
    /// 1-based.
    pub page: u32,
}

impl ListingQuery {
    /// Parses `price`, `vendor`, `tag`, `sort` and `page` query parameters; others are ignored.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut q = ListingQuery {
            page: 1,
            ..Default::default()
        };
        for (key, value) in params {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if value.len() > FILTER_LEN_MAX {
                return Err(format!("{key} is longer than {FILTER_LEN_MAX} characters"));
            }
            match key {
                "price" => {
                    q.price = Some(
                        PriceBand::from_slug(value)
                            .ok_or_else(|| format!("unknown price band {value:?}"))?,
                    )
                }
                "vendor" => q.vendor = Some(value.to_owned()),
                "tag" => q.tag = Some(value.to_lowercase()),
                "sort" => {
                    q.sort = Sort::ALL
                        .into_iter()
                        .find(|s| s.slug() == value)
                        .ok_or_else(|| format!("unknown sort {value:?}"))?
                }
                "page" => {
                    q.page = value
                        .parse()
                        .ok()
                        .filter(|&p| p >= 1)
                        .ok_or_else(|| format!("page {value:?} is not a page number"))?
                }
                _ => {}
            }
        }
        Ok(q)
    }

    pub fn is_filtered(&self) -> bool {
        self.price.is_some() || self.vendor.is_some() || self.tag.is_some()
    }

    /// The query string (without '?') for this listing; `page` 1 and the default sort are omitted.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(price) = self.price {
            parts.push(format!("price={}", price.slug()));
        }
        if let Some(vendor) = &self.vendor {
            parts.push(format!("vendor={}", encode(vendor)));
        }
        if let Some(tag) = &self.tag {
            parts.push(format!("tag={}", encode(tag)));
        }
        if self.sort != Sort::Featured {
            parts.push(format!("sort={}", self.sort.slug()));
        }
        if self.page > 1 {
            parts.push(format!("page={}", self.page));
        }
        parts.join("&")
    }

    /// Whether `p`, shown at `shelf_minor`, passes the filters.
    fn matches(&self, p: &ProductSummary, shelf_minor: u64) -> bool {
        self.price
            .is_none_or(|band| PriceBand::of(shelf_minor) == band)
            && self.vendor.as_deref().is_none_or(|v| p.vendor == v)
            && self
                .tag
                .as_deref()
                .is_none_or(|t| p.tags.iter().any(|pt| pt == t))
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One page of a filtered, sorted listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingPage {
    pub products: Vec<ProductSummary>,
    /// Products matching the filters, on all pages.
    pub total: u32,
    pub page: u32,
    pub pages: u32,
    /// Counts within the filtered set.
    pub facets: Facets,
}

/// Filters `products` (in their given order), sorts and cuts one page; price sorts use the
/// list price.
pub fn page<'a>(
    products: impl IntoIterator<Item = &'a ProductSummary>,
    query: &ListingQuery,
    precomputed: Option<&Facets>,
) -> ListingPage {
    page_priced(products, query, precomputed, |p| p.price.minor)
}

/// [`page`] at the prices the shopper is shown: `shelf_price` (minor units, e.g. a sale price)
/// places each product in a price band (filter and facet) and orders the price sorts.
/// `precomputed` facets are the publish-time counts of `products`, at list prices: an
/// unfiltered page takes them, with the products whose shelf price is in another band moved.
pub fn page_priced<'a>(
    products: impl IntoIterator<Item = &'a ProductSummary>,
    query: &ListingQuery,
    precomputed: Option<&Facets>,
    shelf_price: impl Fn(&ProductSummary) -> u64,
) -> ListingPage {
    let mut matching: Vec<(&ProductSummary, u64)> = products
        .into_iter()
        .map(|p| (p, shelf_price(p)))
        .filter(|&(p, shelf)| query.matches(p, shelf))
        .collect();
    let facets = match precomputed {
        Some(f) if !query.is_filtered() => repriced(f, &matching),
        _ => facets_priced(matching.iter().copied()),
    };
    match query.sort {
        Sort::Featured => {}
        Sort::PriceAsc => matching.sort_by_key(|&(_, shelf)| shelf),
        Sort::PriceDesc => matching.sort_by_key(|&(_, shelf)| std::cmp::Reverse(shelf)),
        Sort::Title => matching.sort_by_cached_key(|(p, _)| p.title.to_lowercase()),
    }
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = (query.page.max(1) as usize).min(pages);
    let products = matching
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|(p, _)| p.clone())
        .collect();
    ListingPage {
        products,
        total: total as u32,
        page: page as u32,
        pages: pages as u32,
        facets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Money, Sku};

    fn summary(
        i: usize,
        category: &str,
        price: u64,
        vendor: &str,
        tags: &[&str],
    ) -> ProductSummary {
        ProductSummary {
            sku: Sku::parse(&format!("S-{i}")).unwrap(),
            title: format!("Item {i:03}"),
            price: Money::new(price, "USD"),
            category: category.into(),
            image: "/i.svg".into(),
            vendor: vendor.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            sale_price: None,
        }
    }

    fn sample() -> Vec<ProductSummary> {
        (0..60)
            .map(|i| {
                let category = if i % 3 == 0 {
                    "Home & Living"
                } else {
                    "Outdoor"
                };
                let vendor = if i % 2 == 0 { "Acme" } else { "Birch" };
                let tags: &[&str] = if i % 5 == 0 {
                    &["sale", "new"]
                } else {
                    &["new"]
                };
                summary(i, category, (i as u64 + 1) * 500, vendor, tags)
            })
            .collect()
    }

    #[test]
    fn slugs_are_url_safe_and_stable() {
        assert_eq!(slug("Home & Living"), "home-living");
        assert_eq!(slug("  Outdoor  "), "outdoor");
        assert_eq!(slug("Café Ware"), "caf-ware");
        assert_eq!(slug("!!!"), "other");
        assert_eq!(slug(""), "other");
        assert_eq!(slug("A--b__C"), "a-b-c");
        assert_eq!(slug("ÅNGSTRÖM 2"), "ngstr-m-2");
    }

    #[test]
    fn same_slug_agrees_with_comparing_slugs() {
        let names = [
            "Home & Living",
            "home-living",
            "HOME living ",
            "Home",
            "home-",
            "Other",
            "other",
            "!!!",
            "",
            "Café Ware",
            "caf ware",
            "Ca Ware",
            "a",
            "A ",
            "ab",
            "a-b",
            "a b",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_slug(a, b), slug(a) == slug(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn categories_count_their_products() {
        let cats = categories(&sample());
        assert_eq!(
            cats.iter()
                .map(|c| (c.slug.as_str(), c.products))
                .collect::<Vec<_>>(),
            [("home-living", 20), ("outdoor", 40)]
        );
    }

    #[test]
    fn facets_count_price_bands_vendors_and_tags() {
        let f = facets(&sample());
        let total: u32 = f.price.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 60);
        assert_eq!(f.price[0], (PriceBand::Under25, 4), "5.00 to 20.00");
        assert_eq!(
            f.vendors,
            vec![("Acme".to_string(), 30), ("Birch".to_string(), 30)]
        );
        assert_eq!(
            f.tags,
            vec![("new".to_string(), 60), ("sale".to_string(), 12)]
        );
    }

    #[test]
    fn filters_sort_and_page() {
        let products = sample();
        let q = ListingQuery::from_params([
            ("vendor", "Acme"),
            ("tag", "SALE"),
            ("sort", "price-desc"),
        ])
        .unwrap();
        let page1 = page(&products, &q, None);
        assert_eq!(page1.total, 6, "even i divisible by 5: 0,10,..,50");
        assert!(page1
            .products
            .windows(2)
            .all(|w| w[0].price.minor >= w[1].price.minor));
        assert!(page1
            .products
            .iter()
            .all(|p| p.vendor == "Acme" && p.tags.contains(&"sale".to_string())));
        assert_eq!(
            page1.facets.vendors,
            vec![("Acme".to_string(), 6)],
            "facets count the filtered set"
        );

        let all = ListingQuery {
            page: 3,
            ..ListingQuery::default()
        };
        let last = page(&products, &all, None);
        assert_eq!(
            (last.page, last.pages, last.products.len()),
            (3, 3, 60 - 2 * PAGE_SIZE)
        );
        let beyond = page(
            &products,
            &ListingQuery {
                page: 99,
                ..ListingQuery::default()
            },
            None,
        );
        assert_eq!(beyond.page, 3, "a page past the end shows the last page");
    }

    #[test]
    fn query_round_trips_through_the_url() {
        let q = ListingQuery::from_params([
            ("price", "25-50"),
            ("vendor", "A & B"),
            ("sort", "title"),
            ("page", "2"),
        ])
        .unwrap();
        assert_eq!(
            q.to_query(),
            "price=25-50&vendor=A%20%26%20B&sort=title&page=2"
        );
        for bad in [
            ("price", "cheap"),
            ("sort", "random"),
            ("page", "0"),
            ("page", "x"),
        ] {
            assert!(
                ListingQuery::from_params([bad]).is_err(),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            ListingQuery::from_params([("utm_source", "x")]).unwrap(),
            ListingQuery {
                page: 1,
                ..Default::default()
            }
        );
    }
}
