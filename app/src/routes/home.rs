use crate::data::list_products;
use edge_core::ProductSummary;
use leptos::prelude::*;
use leptos_meta::{Meta, Title};

#[component]
pub fn HomePage() -> impl IntoView {
    let products = Resource::new(|| (), |_| list_products());
    view! {
        <Title text="All products" />
        <Meta name="description" content="Everything in the Edge Shop, served from the nearest edge." />
        <h1>"All products"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading products…"</p> }>
            {move || Suspend::new(async move {
                match products.await {
                    Ok(list) if list.is_empty() => {
                        view! { <p class="notice">"No products are published yet."</p> }.into_any()
                    }
                    Ok(list) => view! { <ProductGrid products=list /> }.into_any(),
                    Err(_) => {
                        super::set_status(503);
                        view! {
                            <p class="notice">"The product list is unavailable right now. Please try again shortly."</p>
                        }
                        .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProductGrid(products: Vec<ProductSummary>) -> impl IntoView {
    view! {
        <ul class="grid">
            {products
                .into_iter()
                .map(|p| {
                    let href = format!("/p/{}", p.sku);
                    view! {
                        <li class="card" data-sku=p.sku.to_string()>
                            <a href=href>
                                <img src=p.image alt="" width="240" height="180" loading="lazy" />
                                <span class="category">{p.category}</span>
                                <h2 class="title">{p.title}</h2>
                                <span class="price">{p.price.to_string()}</span>
                            </a>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}
