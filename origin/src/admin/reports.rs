//! Sales reports from the order book, for the dashboard:
//!
//! - `GET /admin/api/reports/sales?from=&to=` (viewer): per currency, orders and revenue per
//!   UTC day (every day of the range, zeros included), the totals and the average order value,
//!   and the top products by units. Revenue counts every order in the range except cancelled
//!   and refunded ones, at the price it was sold for.
//! - `GET /admin/api/reports/sales.svg?from=&to=` (viewer): the revenue per day of the range's
//!   main currency as a bar chart, drawn on the server as plain SVG (no script, no inline
//!   style: it passes the admin's CSP as is).
//!
//! The range defaults to the 30 days up to today and spans at most [`RANGE_DAYS_MAX`] days.

use super::error::AdminError;
use super::orders::parse_time;
use super::Admin;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

pub const DAY_MS: u64 = 86_400_000;
/// The longest range one report covers.
pub const RANGE_DAYS_MAX: u64 = 366;
pub const RANGE_DAYS_DEFAULT: u64 = 30;
/// Products the top list holds.
pub const TOP_PRODUCTS: usize = 10;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One day of one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub orders: u64,
    pub revenue_minor: u64,
}

/// One currency's sales over the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrencySales {
    pub currency: String,
    pub orders: u64,
    pub revenue_minor: u64,
    /// Average order value (revenue / orders, rounded down); 0 without orders.
    pub aov_minor: u64,
    pub days: Vec<Day>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopProduct {
    pub sku: String,
    pub title: String,
    pub currency: String,
    pub units: u64,
    pub revenue_minor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sales {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Biggest revenue first.
    pub currencies: Vec<CurrencySales>,
    pub top_products: Vec<TopProduct>,
}

/// `YYYY-MM-DD` of a day number since the epoch (Howard Hinnant's `civil_from_days`).
pub fn date_of_day(days: i64) -> String {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The range asked for, whole UTC days: `[from_ms, to_ms)`.
pub(crate) fn range(query: RangeQuery, now_ms: u64) -> Result<(u64, u64), AdminError> {
    let to_ms = match query.to.as_deref().filter(|t| !t.is_empty()) {
        Some(to) => parse_time(to, true)?,
        None => (now_ms / DAY_MS + 1) * DAY_MS,
    };
    let to_ms = to_ms.div_ceil(DAY_MS) * DAY_MS;
    let from_ms = match query.from.as_deref().filter(|f| !f.is_empty()) {
        Some(from) => parse_time(from, false)? / DAY_MS * DAY_MS,
        None => to_ms.saturating_sub(RANGE_DAYS_DEFAULT * DAY_MS),
    };
    if from_ms >= to_ms || (to_ms - from_ms) / DAY_MS > RANGE_DAYS_MAX {
        return Err(AdminError::BadRequest(format!(
            "from must be before to, at most {RANGE_DAYS_MAX} days apart"
        )));
    }
    Ok((from_ms, to_ms))
}

/// Orders that count as revenue.
const COUNTED: &str = "status NOT IN ('cancelled', 'refunded')";

impl Admin {
    /// The sales over `[from_ms, to_ms)` (whole days).
    pub async fn sales(&self, from_ms: u64, to_ms: u64) -> Result<Sales, AdminError> {
        let (days, top) = self
            .book
            .query(move |conn| {
                let mut per_day = conn.prepare(&format!(
                    "SELECT placed_at_ms / {DAY_MS}, currency, COUNT(*), SUM(total_minor) \
                     FROM orders WHERE placed_at_ms >= ?1 AND placed_at_ms < ?2 AND {COUNTED} \
                     GROUP BY 1, 2"
                ))?;
                let days = per_day
                    .query_map(params![from_ms, to_ms], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, u64>(2)?,
                            row.get::<_, u64>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut top = conn.prepare(&format!(
                    "SELECT json_extract(l.value, '$.sku'), MAX(json_extract(l.value, '$.title')), \
                     o.currency, SUM(json_extract(l.value, '$.qty')), \
                     SUM(json_extract(l.value, '$.qty') * json_extract(l.value, '$.unit_price.minor')) \
                     FROM orders o, json_each(o.body, '$.lines') l \
                     WHERE o.placed_at_ms >= ?1 AND o.placed_at_ms < ?2 AND o.{COUNTED} \
                     GROUP BY 1, 3 ORDER BY 4 DESC, 5 DESC, 1 LIMIT ?3"
                ))?;
                let top = top
                    .query_map(params![from_ms, to_ms, TOP_PRODUCTS as i64], |row| {
                        Ok(TopProduct {
                            sku: row.get(0)?,
                            title: row.get(1)?,
                            currency: row.get(2)?,
                            units: row.get(3)?,
                            revenue_minor: row.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((days, top))
            })
            .await?;
        let first_day = (from_ms / DAY_MS) as i64;
        let day_count = ((to_ms - from_ms) / DAY_MS) as usize;
        let mut currencies: BTreeMap<String, CurrencySales> = BTreeMap::new();
        for (day, currency, orders, revenue_minor) in days {
            let sales = currencies
                .entry(currency.clone())
                .or_insert_with(|| CurrencySales {
                    currency,
                    orders: 0,
                    revenue_minor: 0,
                    aov_minor: 0,
                    days: (0..day_count)
                        .map(|i| Day {
                            date: date_of_day(first_day + i as i64),
                            ..Day::default()
                        })
                        .collect(),
                });
            if let Some(slot) = usize::try_from(day - first_day)
                .ok()
                .and_then(|i| sales.days.get_mut(i))
            {
                slot.orders += orders;
                slot.revenue_minor += revenue_minor;
            }
            sales.orders += orders;
            sales.revenue_minor += revenue_minor;
        }
        let mut currencies: Vec<CurrencySales> = currencies
            .into_values()
            .map(|mut c| {
                c.aov_minor = c.revenue_minor.checked_div(c.orders).unwrap_or(0);
                c
            })
            .collect();
        currencies.sort_by_key(|c| std::cmp::Reverse(c.revenue_minor));
        Ok(Sales {
            from_ms,
            to_ms,
            currencies,
            top_products: top,
        })
    }
}

/// `GET /admin/api/reports/sales?from=&to=` (viewer).
pub async fn sales(
    State(admin): State<Arc<Admin>>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let (from_ms, to_ms) = range(query, admin.now_ms())?;
    Ok(Json(json!(admin.sales(from_ms, to_ms).await?)))
}

/// `GET /admin/api/reports/sales.svg?from=&to=` (viewer).
pub async fn sales_svg(
    State(admin): State<Arc<Admin>>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let (from_ms, to_ms) = range(query, admin.now_ms())?;
    let sales = admin.sales(from_ms, to_ms).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        revenue_chart(&sales),
    )
        .into_response())
}

/// Text safe inside SVG (XML) content and attributes.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Minor units as a decimal amount with two places (how every dashboard shows them).
fn amount(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

pub const CHART_WIDTH: u32 = 720;
pub const CHART_HEIGHT: u32 = 240;

/// The main currency's revenue per day as a bar chart.
pub fn revenue_chart(sales: &Sales) -> String {
    let (w, h) = (CHART_WIDTH as f64, CHART_HEIGHT as f64);
    let (left, right, top, bottom) = (64.0, 16.0, 28.0, 28.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let Some(main) = sales.currencies.first() else {
        let _ = write!(
            svg,
            "<title>No sales</title><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No sales in this range</text></svg>",
            w / 2.0,
            h / 2.0
        );
        return svg;
    };
    let currency = xml(&main.currency);
    let max = main
        .days
        .iter()
        .map(|d| d.revenue_minor)
        .max()
        .unwrap_or(0)
        .max(1);
    let _ = write!(
        svg,
        "<title>Revenue per day ({currency}): {} over {} orders</title>\
         <text x=\"{left}\" y=\"16\">Revenue per day, {currency} (total {}, {} orders, AOV {})</text>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        amount(main.revenue_minor),
        main.orders,
        amount(main.revenue_minor),
        main.orders,
        amount(main.aov_minor),
        h - bottom,
        w - right,
        h - bottom,
        left - 6.0,
        top + 4.0,
        amount(max),
        left - 6.0,
        h - bottom,
    );
    let n = main.days.len().max(1) as f64;
    let slot = (w - left - right) / n;
    let bar = (slot * 0.8).max(1.0);
    for (i, day) in main.days.iter().enumerate() {
        let height = (h - top - bottom) * day.revenue_minor as f64 / max as f64;
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let y = h - bottom - height;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" fill=\"#3b6ea5\">\
             <title>{}: {} {currency}, {} orders</title></rect>",
            xml(&day.date),
            amount(day.revenue_minor),
            day.orders
        );
    }
    if let (Some(first), Some(last)) = (main.days.first(), main.days.last()) {
        let _ = write!(
            svg,
            "<text x=\"{left}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            h - 10.0,
            xml(&first.date),
            w - right,
            h - 10.0,
            xml(&last.date)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_become_utc_dates() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_781), "2026-11-24");
        assert_eq!(date_of_day(11_016), "2000-02-29");
        assert_eq!(xml("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
        assert_eq!(amount(123_405), "1234.05");
    }
}
