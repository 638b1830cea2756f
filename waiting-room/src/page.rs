//! The waiting-room page: one self-contained HTML document (no CDN, no build
//! step). It joins, polls `/api/status` at the interval the server suggests,
//! fetches a pass when admitted, and submits the investment through the edge.

const TEMPLATE: &str = include_str!("page.html");

/// The page for `round`. The round id is `[a-z0-9-]` (validated by core's
/// config), so it is safe to place in HTML as is.
pub fn render(round: &str) -> String {
    let safe: String = round
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    TEMPLATE.replace("{{ROUND}}", &safe)
}
