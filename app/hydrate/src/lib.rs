//! Entry point of the browser bundle: `/pkg/shop.js` calls [`hydrate`] once the wasm is loaded,
//! and Leptos attaches to the server-rendered HTML instead of rendering it again.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
