//! Live updates in the browser: a WebSocket to the worker, whose Durable Objects push a small
//! JSON message whenever what the page shows changes (a stock level, an order's status).
//!
//! On the server this does nothing: pages render what they read, the browser then listens.

/// Listens on `path` (e.g. `/api/stock/KIT-001/live`) for as long as the calling reactive
/// scope lives, handing each message to `on_message`. A dropped connection is retried a bounded
/// number of times, a few seconds apart.
pub fn watch(path: String, on_message: impl Fn(String) + Clone + 'static) {
    #[cfg(feature = "hydrate")]
    browser::watch(path, on_message);
    #[cfg(not(feature = "hydrate"))]
    let _ = (path, on_message);
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{MessageEvent, WebSocket};

    /// Reconnects after a dropped connection, at most.
    const RECONNECTS_MAX: u32 = 20;
    const RECONNECT_DELAY_MS: u64 = 3_000;

    struct Watch {
        socket: RefCell<Option<WebSocket>>,
        closed: Cell<bool>,
        reconnects: Cell<u32>,
    }

    fn url(path: &str) -> Option<String> {
        let location = web_sys::window()?.location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        Some(format!("{scheme}://{}{path}", location.host().ok()?))
    }

    pub fn watch(path: String, on_message: impl Fn(String) + Clone + 'static) {
        let watch = Rc::new(Watch {
            socket: RefCell::new(None),
            closed: Cell::new(false),
            reconnects: Cell::new(0),
        });
        connect(watch.clone(), path, on_message);
        let send_watch = send_wrapper::SendWrapper::new(watch);
        on_cleanup(move || {
            send_watch.closed.set(true);
            if let Some(socket) = send_watch.socket.borrow_mut().take() {
                let _ = socket.close();
            }
        });
    }

    fn connect(watch: Rc<Watch>, path: String, on_message: impl Fn(String) + Clone + 'static) {
        let Some(url) = url(&path) else { return };
        let Ok(socket) = WebSocket::new(&url) else {
            return;
        };
        let handler = on_message.clone();
        let onmessage = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(text) = event.data().as_string() {
                handler(text);
            }
        });
        socket.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        onmessage.forget();
        let again = watch.clone();
        let onclose = Closure::<dyn Fn()>::new(move || {
            if again.closed.get() || again.reconnects.get() >= RECONNECTS_MAX {
                return;
            }
            again.reconnects.set(again.reconnects.get() + 1);
            let (watch, path, on_message) = (again.clone(), path.clone(), on_message.clone());
            set_timeout(
                move || connect(watch, path, on_message),
                std::time::Duration::from_millis(RECONNECT_DELAY_MS),
            );
        });
        socket.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        onclose.forget();
        *watch.socket.borrow_mut() = Some(socket);
    }
}
