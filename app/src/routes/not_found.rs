use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    super::set_status(404);
    view! {
        <Title text="Not found" />
        <section class="notice">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. " <a href="/">"Back to the shop"</a></p>
        </section>
    }
}
