//! Importing a Shopify product export (CSV) as a catalog.
//!
//! Shopify writes one row per variant, repeating the product's Handle; the first row of a handle
//! carries the product's fields (Title, Body (HTML), Vendor, Type, Tags, option names), later rows
//! only variant fields, and rows with nothing but an Image Src add images. A single variant whose
//! option value is "Default Title" is a product without variants. Drafts and archived products
//! are skipped. Every problem names the CSV line it comes from.

use edge_core::product::{CatalogEntry, CatalogFile, CatalogProblem, VariantEntry};
use edge_core::Catalog;
use std::collections::HashMap;

/// Shown for products exported without an image.
pub const PLACEHOLDER_IMAGE: &str = "/images/placeholder.svg";
/// Category for products with neither a Type nor a Product Category.
pub const DEFAULT_CATEGORY: &str = "Uncategorized";

/// A Shopify export turned into a validated catalog, and what was left out on purpose.
#[derive(Debug)]
pub struct Imported {
    pub catalog: Catalog,
    /// Handles of drafts and archived products, which are not published.
    pub skipped: Vec<String>,
}

/// Where each catalog entry (and each of its variants) came from, for problem lines.
struct Lines {
    product: usize,
    variants: Vec<usize>,
}

/// Column positions by header name.
struct Columns(HashMap<String, usize>);

impl Columns {
    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> &'r str {
        self.0
            .get(name)
            .and_then(|&i| record.get(i))
            .map(str::trim)
            .unwrap_or("")
    }
}

fn problem(
    line: usize,
    entry: Option<usize>,
    field: &str,
    message: impl Into<String>,
) -> CatalogProblem {
    CatalogProblem {
        entry,
        line: Some(line),
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a Shopify export into a validated catalog priced in `currency`.
pub fn import(text: &str, currency: &str) -> Result<Imported, Vec<CatalogProblem>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| {
        vec![problem(
            1,
            None,
            "header",
            format!("unreadable CSV header: {e}"),
        )]
    })?;
    let columns = Columns(
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().to_owned(), i))
            .collect(),
    );
    let missing: Vec<&str> = ["Handle", "Title", "Variant SKU", "Variant Price"]
        .into_iter()
        .filter(|c| !columns.0.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return Err(vec![problem(
            1,
            None,
            "header",
            format!(
                "missing column(s) {}: not a Shopify product export",
                missing.join(", ")
            ),
        )]);
    }

    let mut problems = Vec::new();
    let mut entries: Vec<CatalogEntry> = Vec::new();
    let mut lines: Vec<Lines> = Vec::new();
    let mut by_handle: HashMap<String, Option<usize>> = HashMap::new();
    let mut skipped = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                problems.push(problem(
                    line,
                    None,
                    "row",
                    format!("unreadable CSV row: {e}"),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let col = |name: &str| columns.get(&record, name);
        let handle = col("Handle");
        if handle.is_empty() {
            if record.iter().any(|f| !f.trim().is_empty()) {
                problems.push(problem(line, None, "Handle", "row without a Handle"));
            }
            continue;
        }
        let slot = match by_handle.get(handle) {
            Some(slot) => *slot,
            None => {
                // The first row of a handle describes the product.
                let status = col("Status").to_lowercase();
                let slot = if status == "draft" || status == "archived" {
                    skipped.push(handle.to_owned());
                    None
                } else {
                    let category = match (col("Type"), col("Product Category")) {
                        (t, _) if !t.is_empty() => t.to_owned(),
                        (_, c) if !c.is_empty() => {
                            c.rsplit('>').next().unwrap_or(c).trim().to_owned()
                        }
                        _ => DEFAULT_CATEGORY.to_owned(),
                    };
                    let title = col("Title");
                    if title.is_empty() {
                        problems.push(problem(
                            line,
                            Some(entries.len()),
                            "Title",
                            "the first row of a product has no Title",
                        ));
                    }
                    let options: Vec<String> = ["Option1 Name", "Option2 Name", "Option3 Name"]
                        .iter()
                        .map(|c| col(c).to_owned())
                        .filter(|n| !n.is_empty())
                        .collect();
                    entries.push(CatalogEntry {
                        sku: String::new(),
                        title: title.to_owned(),
                        description: html_to_text(col("Body (HTML)")),
                        category,
                        image: String::new(),
                        vendor: col("Vendor").to_owned(),
                        tags: col("Tags")
                            .split(',')
                            .map(|t| t.trim().to_owned())
                            .filter(|t| !t.is_empty())
                            .collect(),
                        options,
                        ..CatalogEntry::default()
                    });
                    lines.push(Lines {
                        product: line,
                        variants: Vec::new(),
                    });
                    Some(entries.len() - 1)
                };
                by_handle.insert(handle.to_owned(), slot);
                slot
            }
        };
        let Some(index) = slot else { continue };
        let entry = &mut entries[index];
        if entry.image.is_empty() && !col("Image Src").is_empty() {
            entry.image = col("Image Src").to_owned();
        }
        let is_variant_row = !col("Variant SKU").is_empty()
            || !col("Variant Price").is_empty()
            || !col("Option1 Value").is_empty();
        if !is_variant_row {
            continue; // an image row
        }
        let sku = col("Variant SKU");
        if sku.is_empty() {
            problems.push(problem(
                line,
                Some(index),
                "Variant SKU",
                "missing SKU: every variant needs one to hold stock",
            ));
            continue;
        }
        let price = match parse_price(col("Variant Price")) {
            Ok(minor) => minor,
            Err(message) => {
                problems.push(problem(line, Some(index), "Variant Price", message));
                continue;
            }
        };
        let stock = match col("Variant Inventory Qty") {
            "" => 0,
            qty => match qty.parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    problems.push(problem(
                        line,
                        Some(index),
                        "Variant Inventory Qty",
                        format!("{qty:?} is not a whole number"),
                    ));
                    continue;
                }
            },
        };
        let values: Vec<String> = ["Option1 Value", "Option2 Value", "Option3 Value"]
            .iter()
            .map(|c| col(c).to_owned())
            .take(entry.options.len().max(1))
            .collect();
        entry.variants.push(VariantEntry {
            sku: sku.to_owned(),
            options: values,
            price_minor: price,
            stock,
        });
        lines[index].variants.push(line);
    }

    // Shopify's single "Default Title" variant is a product without variants.
    for entry in &mut entries {
        if entry.variants.len() == 1
            && entry.variants[0]
                .options
                .iter()
                .all(|v| v == "Default Title" || v.is_empty())
        {
            let only = entry.variants.remove(0);
            entry.sku = only.sku;
            entry.price_minor = Some(only.price_minor);
            entry.stock = Some(only.stock);
            entry.options.clear();
        } else if let Some(first) = entry.variants.first() {
            entry.sku = first.sku.clone();
        }
        if entry.image.is_empty() {
            entry.image = PLACEHOLDER_IMAGE.to_owned();
        }
    }
    // Products whose every variant row was bad have no SKU; their rows are reported already.
    let keep: Vec<bool> = entries.iter().map(|e| !e.sku.is_empty()).collect();
    let mut kept_lines = Vec::new();
    let mut kept_entries = Vec::new();
    for ((entry, entry_lines), keep) in entries.into_iter().zip(lines).zip(keep) {
        if keep {
            kept_entries.push(entry);
            kept_lines.push(entry_lines);
        }
    }

    match Catalog::from_file(CatalogFile {
        currency: currency.to_owned(),
        products: kept_entries,
    }) {
        Ok(catalog) if problems.is_empty() => Ok(Imported { catalog, skipped }),
        Ok(_) => Err(sorted(problems)),
        Err(found) => {
            for mut p in found {
                if let Some(i) = p.entry {
                    let entry_lines = &kept_lines[i];
                    let variant_line = p
                        .field
                        .strip_prefix("variants[")
                        .and_then(|rest| rest.split(']').next())
                        .and_then(|k| k.parse::<usize>().ok())
                        .and_then(|k| entry_lines.variants.get(k).copied());
                    // Single-variant products keep their one row's line for every field.
                    p.line = Some(
                        variant_line
                            .or(entry_lines
                                .variants
                                .first()
                                .copied()
                                .filter(|_| p.field != "title"))
                            .unwrap_or(entry_lines.product),
                    );
                }
                problems.push(p);
            }
            Err(sorted(problems))
        }
    }
}

/// In line order, named by line: positions in the catalog mean nothing to someone with the CSV.
fn sorted(mut problems: Vec<CatalogProblem>) -> Vec<CatalogProblem> {
    for p in &mut problems {
        p.entry = None;
    }
    problems.sort_by_key(|p| p.line);
    problems
}

/// "12", "12.5", "12.50" -> 1200, 1250, 1250. No floats, no more than two decimals.
pub fn parse_price(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing price".into());
    }
    if text.starts_with('-') {
        return Err(format!("price {text} is negative"));
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = fraction.is_none_or(|f| digits(f) && f.len() <= 2);
    let fraction = fraction.unwrap_or("");
    if !digits(whole) || !fraction_ok {
        return Err(format!("price {text:?} is not an amount like 12.50"));
    }
    let whole: i64 = whole
        .parse()
        .map_err(|_| format!("price {text} is too large"))?;
    let cents: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(|| format!("price {text} is too large"))
}

/// The text of an HTML fragment: tags dropped (block tags become spaces), common entities
/// decoded, whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => {
                text.push(' ');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    let decoded = decode_entities(&text);
    let words: Vec<&str> = decoded.split_whitespace().collect();
    let mut out = words.join(" ");
    // Tags replaced by spaces leave "word ," and "( word": tidy the common cases.
    for (from, to) in [
        (" ,", ","),
        (" .", "."),
        (" !", "!"),
        (" ?", "?"),
        (" ;", ";"),
        (" :", ":"),
    ] {
        out = out.replace(from, to);
    }
    out
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let end = tail.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| match &tail[1..e] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            num if num.starts_with('#') => num[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &tail[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_to_minor_units_without_floats() {
        assert_eq!(parse_price("129.00"), Ok(12_900));
        assert_eq!(parse_price("134.5"), Ok(13_450));
        assert_eq!(parse_price("45"), Ok(4_500));
        assert_eq!(parse_price("0.07"), Ok(7));
        for bad in ["", "-5.00", "ten", "1.234", "1,50", ".5", "5."] {
            assert!(parse_price(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn html_bodies_become_plain_text() {
        assert_eq!(
            html_to_text("<p>Grippy <strong>trail</strong> shoe, with a rock plate &amp; a 6&nbsp;mm drop.</p>"),
            "Grippy trail shoe, with a rock plate & a 6 mm drop."
        );
        assert_eq!(html_to_text("<ul><li>One</li><li>Two</li></ul>"), "One Two");
        assert_eq!(
            html_to_text("Fish &chips &#233;t&eacute;"),
            "Fish &chips ét&eacute;"
        );
        assert_eq!(html_to_text("unclosed <b"), "unclosed");
    }
}
