//! The admin UI's pages as Leptos views, each rendered to a `String` from what its handler
//! loaded. Forms post to the server functions of [`super::actions`]; every state-changing form
//! carries the session's CSRF token in a hidden `csrf` field.

use super::super::accounts::{Role, User};
use super::super::audit::Entry;
use super::super::deliveries::EdgeOutbox;
use super::super::orders::{OrderDetail, OrderPage};
use super::super::outbox::Row as OutboxRow;
use super::super::reports::{date_of_day, Sales};
use super::super::sessions::Session;
use super::{query_string, Flash};
use edge_core::order::ALL_STATUSES;
use edge_core::{Sku, StockLevel};
use leptos::prelude::*;

/// The UI's whole stylesheet, served as `/admin/ui.css` (the CSP allows no inline styles).
pub const STYLESHEET: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{display:flex;gap:1.2em;align-items:center;padding:.7em 1.5em;background:#1d2330;color:#fff}\
header a{color:#fff;text-decoration:none}header .who{margin-left:auto;opacity:.8}\
header form{margin:0}main{padding:1em 1.5em;max-width:72em}\
table{border-collapse:collapse;width:100%;background:#fff;margin:.6em 0}\
th,td{border-bottom:1px solid #e1e4ea;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#eef0f4}td.num,th.num{text-align:right}\
.flash{padding:.6em 1em;border-radius:4px;margin:.6em 0}\
.flash.ok{background:#e3f6e8;border:1px solid #9fd8ae}\
.flash.error{background:#fde8e8;border:1px solid #f0a5a5}\
form.inline{display:inline}form.filters,form.box{background:#fff;padding:.8em;margin:.6em 0;\
border:1px solid #e1e4ea;border-radius:4px}\
label{display:inline-block;margin:.2em .8em .2em 0}input,select,button{font:inherit;padding:.2em .4em}\
button{cursor:pointer}.status{font-weight:600}.muted{color:#687185}pre{margin:0;white-space:pre-wrap}\
img.chart{max-width:100%;background:#fff;border:1px solid #e1e4ea}\
";

/// `YYYY-MM-DD HH:MM:SS` (UTC) of ms since the epoch.
pub fn time(ms: u64) -> String {
    let day_ms = 86_400_000;
    let day = i64::try_from(ms / day_ms).unwrap_or(i64::MAX);
    let s = (ms % day_ms) / 1_000;
    format!(
        "{} {:02}:{:02}:{:02}",
        date_of_day(day),
        s / 3_600,
        (s / 60) % 60,
        s % 60
    )
}

fn amount(currency: &str, minor: u64) -> String {
    format!("{currency} {}.{:02}", minor / 100, minor % 100)
}

fn flash_view(flash: &Flash) -> impl IntoView {
    view! {
        {flash.msg.clone().map(|m| view! { <p class="flash ok" role="status">{m}</p> })}
        {flash.error.clone().map(|e| view! { <p class="flash error" role="alert">{e}</p> })}
    }
}

/// The whole document around a page's body.
fn document(title: &str, session: Option<&Session>, body: impl IntoView + 'static) -> String {
    let nav = session.map(|s| {
        let owner = s.role >= Role::Owner;
        view! {
            <nav>
                <a href="/admin/orders">"Orders"</a>" "
                <a href="/admin/stock">"Stock"</a>" "
                <a href="/admin/reports">"Reports"</a>" "
                <a href="/admin/deliveries">"Deliveries"</a>" "
                {owner.then(|| view! {
                    <a href="/admin/users">"Accounts"</a>" "
                    <a href="/admin/privacy">"Shoppers' data"</a>" "
                    <a href="/admin/audit">"Audit log"</a>
                })}
            </nav>
            <span class="who">{format!("{} ({})", s.email, s.role.as_str())}</span>
            <form class="inline" method="post" action="/admin/sfn/logout">
                <input type="hidden" name="csrf" value=s.csrf.clone()/>
                <button type="submit" id="logout">"Log out"</button>
            </form>
        }
    });
    view! {
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{format!("{title} · Shop admin")}</title>
                <link rel="stylesheet" href="/admin/ui.css"/>
            </head>
            <body>
                <header><strong>"Shop admin"</strong>{nav}</header>
                <main><h1>{title.to_owned()}</h1>{body}</main>
            </body>
        </html>
    }
    .to_html()
}

/// A page that only says something (an error, a refusal).
pub fn message_page(title: &str, session: Option<&Session>, message: &str) -> String {
    let message = message.to_owned();
    document(
        title,
        session,
        view! { <p class="flash error" role="alert">{message}</p> },
    )
}

pub fn login_page(flash: &Flash, login_csrf: &str) -> String {
    let body = view! {
        {flash_view(flash)}
        <form class="box" method="post" action="/admin/sfn/login">
            <input type="hidden" name="login_csrf" value=login_csrf.to_owned()/>
            <p><label>"E-mail "<input type="email" name="email" required autocomplete="username"/></label></p>
            <p><label>"Password "<input type="password" name="password" required autocomplete="current-password"/></label></p>
            <p>
                <label>"TOTP code "<input type="text" name="totp" inputmode="numeric" autocomplete="one-time-code" size="8"/></label>
                <span class="muted">"only for accounts with two-factor login enabled"</span>
            </p>
            <p><button type="submit" id="login">"Log in"</button></p>
        </form>
    };
    document("Log in", None, body)
}

/// The filters of the order list, as typed (empty: not filtered).
#[derive(Clone, Debug, Default)]
pub struct OrderFilters {
    pub status: String,
    pub from: String,
    pub to: String,
    pub email: String,
    pub sku: String,
    pub q: String,
}

impl OrderFilters {
    fn link(&self, page: usize) -> String {
        let page = page.to_string();
        format!(
            "/admin/orders?{}",
            query_string(&[
                ("status", &self.status),
                ("from", &self.from),
                ("to", &self.to),
                ("email", &self.email),
                ("sku", &self.sku),
                ("q", &self.q),
                ("page", &page),
            ])
        )
    }
}

pub fn orders_page(
    session: &Session,
    flash: &Flash,
    filters: &OrderFilters,
    orders: Option<&OrderPage>,
) -> String {
    let options = ALL_STATUSES
        .into_iter()
        .map(|s| {
            let selected = filters.status == s.as_str();
            view! { <option value=s.as_str() selected=selected>{s.as_str()}</option> }
        })
        .collect_view();
    let results = orders.map(|page| {
        let rows = page
            .orders
            .iter()
            .map(|o| {
                let href = format!("/admin/orders/{}", o.id);
                view! {
                    <tr>
                        <td><a href=href>{o.id.clone()}</a></td>
                        <td>{time(o.placed_at_ms)}</td>
                        <td>{o.email.clone()}</td>
                        <td class="status">{o.status.clone()}</td>
                        <td class="num">{amount(&o.currency, o.total_minor)}</td>
                    </tr>
                }
            })
            .collect_view();
        let previous = (page.page > 1).then(|| {
            view! { <a rel="prev" href=filters.link(page.page - 1)>"← newer"</a>" " }
        });
        let next = page
            .next
            .map(|n| view! { <a rel="next" href=filters.link(n)>"older →"</a> });
        view! {
            <p class="muted">{format!("{} orders match; page {}", page.total, page.page)}</p>
            <table id="orders">
                <thead><tr><th>"Order"</th><th>"Placed (UTC)"</th><th>"E-mail"</th><th>"Status"</th><th class="num">"Total"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <p>{previous}{next}</p>
        }
    });
    let body = view! {
        {flash_view(flash)}
        <form class="filters" method="get" action="/admin/orders">
            <label>"Status "<select name="status"><option value="">"any"</option>{options}</select></label>
            <label>"From "<input type="date" name="from" value=filters.from.clone()/></label>
            <label>"To "<input type="date" name="to" value=filters.to.clone()/></label>
            <label>"E-mail "<input type="text" name="email" value=filters.email.clone()/></label>
            <label>"SKU "<input type="text" name="sku" value=filters.sku.clone()/></label>
            <label>"Text "<input type="search" name="q" value=filters.q.clone()/></label>
            <button type="submit">"Search"</button>
        </form>
        {results}
    };
    document("Orders", Some(session), body)
}

pub fn order_page(session: &Session, flash: &Flash, detail: &OrderDetail) -> String {
    let order = &detail.order;
    let lines = order
        .lines
        .iter()
        .map(|l| {
            view! {
                <tr>
                    <td>{l.sku.to_string()}</td>
                    <td>{l.title.clone()}</td>
                    <td class="num">{l.qty}</td>
                    <td class="num">{l.unit_price.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    let history = detail
        .history
        .iter()
        .map(|h| view! { <tr><td class="status">{h.status.clone()}</td><td>{time(h.at_ms)}</td></tr> })
        .collect_view();
    let actions = detail
        .admin_actions
        .iter()
        .map(|e| {
            let after = e.after.as_ref().map(|v| v.to_string()).unwrap_or_default();
            view! {
                <tr>
                    <td>{time(e.at_ms)}</td>
                    <td>{e.actor.clone().unwrap_or_default()}</td>
                    <td>{e.action.clone()}</td>
                    <td><pre>{after}</pre></td>
                </tr>
            }
        })
        .collect_view();
    // Only the moves the state machine allows, and only for staff: the server function
    // refuses anything else anyway (403 for a viewer, 409 for an illegal move).
    let transitions = (session.role >= Role::Staff).then(|| {
        let buttons = detail
            .next_statuses
            .iter()
            .map(|s| {
                view! {
                    <button type="submit" name="status" value=*s data-status=*s>{format!("Mark {s}")}</button>" "
                }
            })
            .collect_view();
        let none = detail
            .next_statuses
            .is_empty()
            .then(|| view! { <p class="muted">"This order is final: no status can follow."</p> });
        view! {
            <h2>"Change status"</h2>
            {none}
            <form class="box" id="transitions" method="post" action="/admin/sfn/order_status">
                <input type="hidden" name="csrf" value=session.csrf.clone()/>
                <input type="hidden" name="id" value=order.id.to_string()/>
                <p><label>"Note "<input type="text" name="note" size="50" maxlength="1000"/></label></p>
                <p>{buttons}</p>
            </form>
        }
    });
    let body = view! {
        {flash_view(flash)}
        <p>
            "Order "<strong id="order-id">{order.id.to_string()}</strong>" by "{order.email.clone()}
            ", placed "{time(order.placed_at_ms)}" UTC: "
            <span class="status" id="order-status">{order.status.as_str()}</span>
            ", total "{order.total.to_string()}
        </p>
        <table>
            <thead><tr><th>"SKU"</th><th>"Item"</th><th class="num">"Qty"</th><th class="num">"Unit price"</th></tr></thead>
            <tbody>{lines}</tbody>
        </table>
        {transitions}
        <h2>"Status history"</h2>
        <table id="history"><thead><tr><th>"Status"</th><th>"Since (UTC)"</th></tr></thead><tbody>{history}</tbody></table>
        <h2>"Admin actions"</h2>
        <table id="admin-actions">
            <thead><tr><th>"When (UTC)"</th><th>"Who"</th><th>"Action"</th><th>"Details"</th></tr></thead>
            <tbody>{actions}</tbody>
        </table>
    };
    document(&format!("Order {}", order.id), Some(session), body)
}

pub fn stock_page(
    session: &Session,
    flash: &Flash,
    prefix: &str,
    levels: &[(Sku, StockLevel)],
    more: bool,
    selected: Option<&(Sku, StockLevel)>,
    receipt: &str,
) -> String {
    let rows = levels
        .iter()
        .map(|(sku, level)| {
            let href = format!("/admin/stock?{}", query_string(&[("sku", sku.as_str())]));
            view! {
                <tr>
                    <td><a href=href>{sku.to_string()}</a></td>
                    <td class="num">{level.available}</td>
                    <td class="num">{level.held}</td>
                    <td class="num">{level.sold}</td>
                    <td class="num">{level.received}</td>
                </tr>
            }
        })
        .collect_view();
    let more = more.then(|| view! { <p class="muted">"More SKUs match: narrow the prefix."</p> });
    let forms = selected.map(|(sku, level)| {
        let staff = (session.role >= Role::Staff).then(|| {
            view! {
                <form class="box" id="restock" method="post" action="/admin/sfn/restock">
                    <input type="hidden" name="csrf" value=session.csrf.clone()/>
                    <input type="hidden" name="sku" value=sku.to_string()/>
                    <input type="hidden" name="receipt" value=receipt.to_owned()/>
                    <strong>"Restock "</strong>
                    <label>"Units received "<input type="number" name="qty" min="1" required/></label>
                    <label>"Reason "<input type="text" name="reason" required maxlength="500"/></label>
                    <button type="submit">"Restock"</button>
                </form>
                <form class="box" id="adjust" method="post" action="/admin/sfn/adjust">
                    <input type="hidden" name="csrf" value=session.csrf.clone()/>
                    <input type="hidden" name="sku" value=sku.to_string()/>
                    <strong>"Adjust after a count "</strong>
                    <label>"Available "<input type="number" name="available" min="0" required/></label>
                    <label>"Reason "<input type="text" name="reason" required maxlength="500"/></label>
                    <button type="submit">"Adjust"</button>
                </form>
            }
        });
        view! {
            <h2>{format!("SKU {sku}")}</h2>
            <p id="level">
                {format!(
                    "available {}, held {}, sold {}, received {}",
                    level.available, level.held, level.sold, level.received
                )}
            </p>
            {staff}
        }
    });
    let body = view! {
        {flash_view(flash)}
        <form class="filters" method="get" action="/admin/stock">
            <label>"SKU or prefix "<input type="text" name="sku" value=prefix.to_owned()/></label>
            <button type="submit">"Show"</button>
        </form>
        {forms}
        <table id="stock">
            <thead><tr><th>"SKU"</th><th class="num">"Available"</th><th class="num">"Held"</th><th class="num">"Sold"</th><th class="num">"Received"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
        {more}
    };
    document("Stock", Some(session), body)
}

pub fn reports_page(
    session: &Session,
    flash: &Flash,
    from: &str,
    to: &str,
    sales: Option<&Sales>,
) -> String {
    let chart = format!(
        "/admin/api/reports/sales.svg?{}",
        query_string(&[("from", from), ("to", to)])
    );
    let report = sales.map(|sales| {
        let currencies = sales
            .currencies
            .iter()
            .map(|c| {
                let days = c
                    .days
                    .iter()
                    .filter(|d| d.orders > 0)
                    .map(|d| {
                        view! {
                            <tr>
                                <td>{d.date.clone()}</td>
                                <td class="num">{d.orders}</td>
                                <td class="num">{amount(&c.currency, d.revenue_minor)}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <h2>{c.currency.clone()}</h2>
                    <p>
                        {format!(
                            "{} orders, revenue {}, average order {}",
                            c.orders,
                            amount(&c.currency, c.revenue_minor),
                            amount(&c.currency, c.aov_minor)
                        )}
                    </p>
                    <table>
                        <thead><tr><th>"Day"</th><th class="num">"Orders"</th><th class="num">"Revenue"</th></tr></thead>
                        <tbody>{days}</tbody>
                    </table>
                }
            })
            .collect_view();
        let top = sales
            .top_products
            .iter()
            .map(|p| {
                view! {
                    <tr>
                        <td>{p.sku.clone()}</td>
                        <td>{p.title.clone()}</td>
                        <td class="num">{p.units}</td>
                        <td class="num">{amount(&p.currency, p.revenue_minor)}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <p class="muted">{format!("{} to {} (UTC, end exclusive)", time(sales.from_ms), time(sales.to_ms))}</p>
            <img class="chart" id="chart" src=chart alt="Revenue per day"/>
            {currencies}
            <h2>"Top products"</h2>
            <table>
                <thead><tr><th>"SKU"</th><th>"Item"</th><th class="num">"Units"</th><th class="num">"Revenue"</th></tr></thead>
                <tbody>{top}</tbody>
            </table>
        }
    });
    let body = view! {
        {flash_view(flash)}
        <form class="filters" method="get" action="/admin/reports">
            <label>"From "<input type="date" name="from" value=from.to_owned()/></label>
            <label>"To "<input type="date" name="to" value=to.to_owned()/></label>
            <button type="submit">"Show"</button>
        </form>
        {report}
    };
    document("Sales", Some(session), body)
}

pub fn audit_page(
    session: &Session,
    flash: &Flash,
    page: usize,
    entries: &[Entry],
    next: Option<usize>,
) -> String {
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    let rows = entries
        .iter()
        .map(|e| {
            view! {
                <tr>
                    <td class="num">{e.id}</td>
                    <td>{time(e.at_ms)}</td>
                    <td>{e.actor.clone().unwrap_or_default()}</td>
                    <td>{e.ip.clone().unwrap_or_default()}</td>
                    <td class="action">{e.action.clone()}</td>
                    <td>{e.target.clone().unwrap_or_default()}</td>
                    <td><pre>{json(&e.before)}</pre></td>
                    <td><pre>{json(&e.after)}</pre></td>
                </tr>
            }
        })
        .collect_view();
    let previous = (page > 1).then(
        || view! { <a rel="prev" href=format!("/admin/audit?page={}", page - 1)>"← newer"</a>" " },
    );
    let next =
        next.map(|n| view! { <a rel="next" href=format!("/admin/audit?page={n}")>"older →"</a> });
    let body = view! {
        {flash_view(flash)}
        <p><a id="audit-csv" href="/admin/api/audit.csv">"Download the whole log as CSV"</a></p>
        <table id="audit">
            <thead><tr><th class="num">"#"</th><th>"When (UTC)"</th><th>"Who"</th><th>"From"</th><th>"Action"</th><th>"Target"</th><th>"Before"</th><th>"After"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
        <p>{previous}{next}</p>
    };
    document("Audit log", Some(session), body)
}

/// The edge's waiting orders (or why they cannot be listed) and this origin's own outbox.
pub fn deliveries_page(
    session: &Session,
    flash: &Flash,
    edge: &Result<EdgeOutbox, String>,
    here: &Result<Vec<OutboxRow>, String>,
) -> String {
    let staff = session.role >= Role::Staff;
    let edge_view = match edge {
        Err(e) => view! { <p class="flash error" id="edge-outbox-error">{e.clone()}</p> }.into_any(),
        Ok(outbox) if outbox.deliveries.is_empty() && outbox.unreachable_shards.is_empty() => {
            view! { <p class="muted" id="edge-outbox-empty">"Every order the edge placed has reached the origin."</p> }.into_any()
        }
        Ok(outbox) => {
            let rows = outbox
                .deliveries
                .iter()
                .map(|d| {
                    let state = if d.refused { "refused" } else { "waiting" };
                    let retry = staff.then(|| {
                        view! {
                            <form class="inline" method="post" action="/admin/sfn/retry_delivery">
                                <input type="hidden" name="csrf" value=session.csrf.clone()/>
                                <input type="hidden" name="id" value=d.order_id.clone()/>
                                <button type="submit" class="retry">"Retry now"</button>
                            </form>
                        }
                    });
                    view! {
                        <tr data-order=d.order_id.clone() data-state=state>
                            <td>{d.order_id.clone()}</td>
                            <td>{time(d.placed_at_ms)}</td>
                            <td class="num">{d.total.to_string()}</td>
                            <td class="status">{state}</td>
                            <td class="num">{d.attempts}</td>
                            <td class="error">{d.last_error.clone().unwrap_or_default()}</td>
                            <td>{time(d.next_try_ms)}</td>
                            <td>{retry}</td>
                        </tr>
                    }
                })
                .collect_view();
            let unreachable = (!outbox.unreachable_shards.is_empty()).then(|| {
                let shards = outbox.unreachable_shards.join("; ");
                view! { <p class="flash error">"Order shards that did not answer (their orders are not listed): "{shards}</p> }
            });
            view! {
                {unreachable}
                <table id="edge-outbox">
                    <thead><tr><th>"Order"</th><th>"Placed (UTC)"</th><th class="num">"Total"</th><th>"State"</th>
                        <th class="num">"Tries"</th><th>"Last error"</th><th>"Next try (UTC)"</th><th></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
    };
    let here_view = match here {
        Err(e) => view! { <p class="flash error">{e.clone()}</p> }.into_any(),
        Ok(rows) if rows.is_empty() => {
            view! { <p class="muted" id="origin-outbox-empty">"Nothing is waiting."</p> }.into_any()
        }
        Ok(rows) => {
            let rows = rows
                .iter()
                .map(|r| {
                    view! {
                        <tr>
                            <td>{r.kind.clone()}</td>
                            <td><a href=format!("/admin/orders/{}", r.order_id)>{r.order_id.clone()}</a></td>
                            <td class="status">{r.status.clone()}</td>
                            <td class="num">{r.attempts}</td>
                            <td class="error">{r.last_error.clone().unwrap_or_default()}</td>
                            <td>{time(r.next_attempt_at_ms)}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <table id="origin-outbox">
                    <thead><tr><th>"Follow-up"</th><th>"Order"</th><th>"Status"</th><th class="num">"Tries"</th>
                        <th>"Last error"</th><th>"Next try (UTC)"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
    };
    let body = view! {
        {flash_view(flash)}
        <h2>"Orders on their way from the edge"</h2>
        <p class="muted">"Placed and paid at the edge, not yet received here. Waiting ones are retried on their own; \
            a refused one is tried only every few minutes: fix the cause, then retry it now."</p>
        {edge_view}
        <h2>"Follow-ups on their way from here"</h2>
        <p class="muted">"What status changes still have to do: return stock, tell the edge."</p>
        {here_view}
    };
    document("Deliveries", Some(session), body)
}

const ROLES: [Role; 3] = [Role::Owner, Role::Staff, Role::Viewer];

fn role_options(selected: Role) -> impl IntoView {
    ROLES
        .into_iter()
        .map(|r| view! { <option value=r.as_str() selected=r == selected>{r.as_str()}</option> })
        .collect_view()
}

/// Every account, each with its forms; and the form that adds one (owners only).
pub fn users_page(session: &Session, flash: &Flash, users: &[User]) -> String {
    let csrf = session.csrf.clone();
    let rows = users
        .iter()
        .map(|u| {
            let id = u.id.to_string();
            let (toggle, toggle_label) = if u.disabled { ("false", "Enable") } else { ("true", "Disable") };
            let hidden = || view! {
                <input type="hidden" name="csrf" value=csrf.clone()/>
                <input type="hidden" name="id" value=id.clone()/>
            };
            view! {
                <tr data-user=u.email.clone() data-role=u.role.as_str() data-disabled=u.disabled.to_string()>
                    <td>{u.email.clone()}</td>
                    <td>{u.role.as_str()}</td>
                    <td>{if u.disabled { "disabled" } else { "active" }}</td>
                    <td>{if u.totp_enabled { "on" } else { "off" }}</td>
                    <td>{time(u.created_at_ms)}</td>
                    <td>
                        <form class="inline role" method="post" action="/admin/sfn/update_account">
                            {hidden()}
                            <select name="role">{role_options(u.role)}</select>
                            <button type="submit">"Set role"</button>
                        </form>" "
                        <form class="inline toggle" method="post" action="/admin/sfn/update_account">
                            {hidden()}
                            <input type="hidden" name="disabled" value=toggle/>
                            <button type="submit">{toggle_label}</button>
                        </form>" "
                        <form class="inline password" method="post" action="/admin/sfn/update_account">
                            {hidden()}
                            <input type="password" name="password" minlength="12" autocomplete="new-password" placeholder="new password" required/>
                            <button type="submit">"Set password"</button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        {flash_view(flash)}
        <table id="users">
            <thead><tr><th>"E-mail"</th><th>"Role"</th><th>"State"</th><th>"TOTP"</th><th>"Created (UTC)"</th><th>"Change"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
        <p class="muted">"Disabling an account or setting its password ends its sessions. The last enabled owner stays an owner."</p>
        <h2>"Add an account"</h2>
        <form class="box" id="new-user" method="post" action="/admin/sfn/create_account">
            <input type="hidden" name="csrf" value=session.csrf.clone()/>
            <label>"E-mail "<input type="email" name="email" required/></label>
            <label>"Password "<input type="password" name="password" minlength="12" autocomplete="new-password" required/></label>
            <label>"Role "<select name="role">{role_options(Role::Viewer)}</select></label>
            <button type="submit">"Add"</button>
        </form>
    };
    document("Accounts", Some(session), body)
}

/// The look-up form; with a shopper's orders found, the orders, their JSON export and the
/// erase form.
pub fn privacy_page(
    session: &Session,
    flash: &Flash,
    email: &str,
    found: Option<&(String, Vec<edge_core::order::Order>)>,
) -> String {
    let results = found.map(|(email, orders)| {
        let rows = orders
            .iter()
            .map(|o| {
                view! {
                    <tr>
                        <td><a href=format!("/admin/orders/{}", o.id)>{o.id.to_string()}</a></td>
                        <td>{time(o.placed_at_ms)}</td>
                        <td class="status">{o.status.as_str()}</td>
                        <td class="num">{o.total.to_string()}</td>
                    </tr>
                }
            })
            .collect_view();
        let json = format!("/admin/api/privacy/export?{}", query_string(&[("email", email)]));
        view! {
            <p id="found">{format!("{} orders placed with {email}. ", orders.len())}
                <a href=json>"Download them as JSON"</a></p>
            <table id="shopper-orders">
                <thead><tr><th>"Order"</th><th>"Placed (UTC)"</th><th>"Status"</th><th class="num">"Total"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <h2>"Erase"</h2>
            <form class="box" id="erase" method="post" action="/admin/sfn/erase_shopper">
                <input type="hidden" name="csrf" value=session.csrf.clone()/>
                <input type="hidden" name="email" value=email.clone()/>
                <p>"The e-mail is replaced on every order by an anonymous placeholder; the orders stay (accounting). This cannot be undone."</p>
                <label><input type="checkbox" name="confirm" value="yes" required/>" Erase this shopper's e-mail"</label>
                <button type="submit">"Erase"</button>
            </form>
        }
    });
    let body = view! {
        {flash_view(flash)}
        <form class="filters" method="get" action="/admin/privacy">
            <label>"Shopper's e-mail "<input type="email" name="email" value=email.to_owned() required/></label>
            <button type="submit">"Find their orders"</button>
        </form>
        <p class="muted">"Looking a shopper up is an export: it is audited (by a digest of the e-mail, never the e-mail)."</p>
        {results}
    };
    document("Shoppers' data", Some(session), body)
}
