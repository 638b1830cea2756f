//! The ops dashboard: one self-contained HTML page (`dashboard.html`, no
//! external assets, no build step). It asks for the ops token, keeps it in
//! `sessionStorage`, polls `GET /ops/v1/rounds/{round}` every second, draws
//! the last few minutes as inline SVG, and drives the controls through the
//! same API as the CLI. The page itself holds no secrets, so it is served
//! without a token; every call it makes needs one.

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");

/// `GET /ops`
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}
