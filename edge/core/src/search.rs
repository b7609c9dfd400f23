//! Text search over a snapshot: an inverted index built at publish time, ranked at the edge.
//!
//! Terms are lower-cased runs of letters and digits. A product's score for a term is the weight
//! of the best field it appears in (title 3, vendor/category/tags 2, description 1). A query
//! matches products that contain every query term, where a term of 3+ characters also matches
//! longer terms it starts with ("mug" finds "mugs"); results rank by total score, then catalog
//! order.

use crate::product::Product;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Query terms considered; the rest of a long query is ignored.
pub const QUERY_TERMS_MAX: usize = 8;
/// Shortest term that also matches as a prefix.
const PREFIX_MIN_CHARS: usize = 3;
/// Terms longer than this are not indexed (they are noise, not words).
const TERM_CHARS_MAX: usize = 40;

const WEIGHT_TITLE: u8 = 3;
const WEIGHT_ATTRIBUTE: u8 = 2;
const WEIGHT_DESCRIPTION: u8 = 1;

/// Lower-cased terms of a text, in order, with repeats.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.chars().count() <= TERM_CHARS_MAX)
        .map(str::to_lowercase)
}

/// Term -> postings of (product position in the snapshot index, weight), positions ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchIndex {
    terms: BTreeMap<String, Vec<(u32, u8)>>,
}

impl SearchIndex {
    /// Indexes `products`; positions are their positions in this slice (the snapshot's order).
    pub fn build(products: &[Product]) -> Self {
        let mut index: BTreeMap<String, Vec<(u32, u8)>> = BTreeMap::new();
        for (position, p) in products.iter().enumerate() {
            let mut best: BTreeMap<String, u8> = BTreeMap::new();
            let mut add = |text: &str, weight: u8| {
                for term in terms(text) {
                    let w = best.entry(term).or_default();
                    *w = (*w).max(weight);
                }
            };
            add(&p.title, WEIGHT_TITLE);
            add(&p.vendor, WEIGHT_ATTRIBUTE);
            add(&p.category, WEIGHT_ATTRIBUTE);
            for tag in &p.tags {
                add(tag, WEIGHT_ATTRIBUTE);
            }
            add(&p.description, WEIGHT_DESCRIPTION);
            for (term, weight) in best {
                index
                    .entry(term)
                    .or_default()
                    .push((position as u32, weight));
            }
        }
        Self { terms: index }
    }

    /// Positions of matching products, best first.
    pub fn search(&self, query: &str) -> Vec<u32> {
        let query: Vec<String> = terms(query).take(QUERY_TERMS_MAX).collect();
        let mut scores: Option<BTreeMap<u32, u32>> = None;
        for term in &query {
            // Best weight per product for this query term, over every index term it matches.
            let mut hits: BTreeMap<u32, u8> = BTreeMap::new();
            let matching = self.terms.range(term.clone()..).take_while(|(t, _)| {
                *t == term
                    || (term.chars().count() >= PREFIX_MIN_CHARS && t.starts_with(term.as_str()))
            });
            for (_, postings) in matching {
                for &(position, weight) in postings {
                    let w = hits.entry(position).or_default();
                    *w = (*w).max(weight);
                }
            }
            scores = Some(match scores {
                None => hits.into_iter().map(|(p, w)| (p, u32::from(w))).collect(),
                Some(previous) => previous
                    .into_iter()
                    .filter_map(|(p, s)| hits.get(&p).map(|w| (p, s + u32::from(*w))))
                    .collect(),
            });
        }
        let mut ranked: Vec<(u32, u32)> = scores.unwrap_or_default().into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().map(|(position, _)| position).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Money, Sku};

    fn product(sku: &str, title: &str, description: &str, tags: &[&str]) -> Product {
        Product {
            sku: Sku::parse(sku).unwrap(),
            title: title.into(),
            description: description.into(),
            price: Money::new(100, "USD"),
            category: "kitchen".into(),
            image: "/i.svg".into(),
            vendor: "Acme".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            options: vec![],
            variants: vec![],
        }
    }

    fn index() -> SearchIndex {
        SearchIndex::build(&[
            product("A", "Stoneware Mug", "Holds tea or coffee.", &["ceramic"]),
            product("B", "Coffee Grinder", "Burr grinder for beans.", &[]),
            product(
                "C",
                "Travel Mugs (pair)",
                "Steel, keeps coffee hot.",
                &["travel"],
            ),
            product("D", "Linen Towel", "Dries mugs and glasses.", &[]),
        ])
    }

    #[test]
    fn title_matches_rank_above_description_matches() {
        assert_eq!(
            index().search("coffee"),
            vec![1, 0, 2],
            "B has coffee in its title; A, C in the description"
        );
        assert_eq!(
            index().search("mug"),
            vec![0, 2, 3],
            "prefix: mugs; D only in its description"
        );
    }

    #[test]
    fn every_query_term_must_match() {
        assert_eq!(index().search("coffee mug"), vec![0, 2]);
        assert_eq!(index().search("ceramic mug"), vec![0]);
        assert!(index().search("teapot").is_empty());
    }

    #[test]
    fn queries_are_case_and_punctuation_insensitive_and_bounded() {
        assert_eq!(index().search("  MUG!!  "), index().search("mug"));
        assert!(index().search("").is_empty());
        assert!(index().search("!!!").is_empty());
        // Short terms match exactly only: "mu" is not a prefix query.
        assert!(index().search("mu").is_empty());
        let long = "mug ".repeat(1000);
        assert_eq!(index().search(&long), index().search("mug"));
    }
}
