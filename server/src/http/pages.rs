//! The hosted pages (Leptos, server-rendered), their static assets, and the 404 page for
//! every path nothing else claims.

use app::{App, service::SharedPageService, shell};
use axum::{
    Router,
    http::{HeaderValue, header},
    response::Redirect,
    routing::get,
};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list, render_app_async_with_context};
use tower::ServiceBuilder;
use tower_http::{
    services::{ServeDir, ServeFile},
    set_header::SetResponseHeaderLayer,
};

use super::ASSET_MAX_AGE;
use crate::startup::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let options = state.leptos_options.clone();
    let pages: SharedPageService = state.pages.clone();
    let site_root = std::path::PathBuf::from(options.site_root.as_ref());
    // The stylesheet goes inline into every page (one round trip less on 2G); a site
    // built without it (some tests) links it instead.
    let inline_css = std::fs::read_to_string(site_root.join("pkg/malipo.css"))
        .ok()
        .map(|css| app::InlineCss(css.into()));
    // The islands' module pinned to its hash (SRI through the import map), read from
    // the built site once, on the first page.
    let module = format!("/pkg/{}.js", options.output_name);
    let module_file = site_root.join(module.trim_start_matches('/'));
    let module_integrity = std::sync::Arc::new(std::sync::OnceLock::new());
    let context = move || {
        provide_context(pages.clone());
        if let Some(css) = &inline_css {
            provide_context(css.clone());
        }
        let integrity = module_integrity.get_or_init(|| {
            std::fs::read(&module_file).ok().map(|js| {
                let map = serde_json::json!({"integrity": {&module: crate::tamper::sri(&js)}});
                app::ModuleIntegrity(map.to_string().into())
            })
        });
        if let Some(integrity) = integrity {
            provide_context(integrity.clone());
        }
        // The nonce `embed::frame_policy` put on this request, for the hydration script
        // and the embed bridge; the same one is in the response's CSP header. And the
        // language the request asks for, read there too.
        if let Some(parts) = leptos::prelude::use_context::<axum::http::request::Parts>() {
            if let Some(nonce) = parts.extensions.get::<crate::embed::CspNonce>() {
                provide_context(leptos::nonce::Nonce::from_value(nonce.0.clone()));
            }
            if let Some(requested) = parts.extensions.get::<app::i18n::Requested>() {
                provide_context(*requested);
            }
        }
    };

    // Build artefacts: served pre-compressed (`.br`, `.gz` written at build time) when the
    // browser accepts it, so a 2G shopper downloads the smallest form.
    // Every form of a file varies with `Accept-Encoding`: a shared cache must not hand
    // the brotli bytes to a browser that did not ask for them.
    let assets = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::VARY,
            HeaderValue::from_static("accept-encoding"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={}", ASSET_MAX_AGE.as_secs()))
                .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=3600")),
        ))
        .service(
            ServeDir::new(site_root.join("pkg"))
                .precompressed_br()
                .precompressed_gzip(),
        );

    let not_found = {
        let options = options.clone();
        render_app_async_with_context(context.clone(), move || shell(options.clone()))
    };

    Router::new()
        .leptos_routes_with_context(state, generate_route_list(App), context, move || {
            shell(options.clone())
        })
        .nest_service("/pkg", assets)
        .route_service(
            "/favicon.svg",
            ServeFile::new(site_root.join("favicon.svg")),
        )
        // The payment page's script inventory (PCI DSS 6.4.3), written at build time.
        .route_service(
            "/script-inventory.json",
            ServeFile::new(site_root.join("script-inventory.json")),
        )
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/favicon.svg") }),
        )
        .fallback(not_found)
}
