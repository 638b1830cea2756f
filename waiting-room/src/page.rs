//! The waiting-room page: one self-contained HTML document (no CDN, no build
//! step).
//!
//! The server renders the visitor's current status into it, so it works
//! without JavaScript: it refreshes itself at the suggested poll interval,
//! offers a "join" button, and when admitted a plain form that invests
//! through `POST /invest`. With JavaScript it joins by itself, polls
//! `/api/status` at `poll_after_ms` and updates in place (`aria-live`).

use crowdgate_protocol::api::{Status, VisitorState};

const TEMPLATE: &str = include_str!("page.html");

/// What the page shows before JavaScript (if any) takes over.
pub struct View<'a> {
    pub round: &'a str,
    /// The visitor's status, when they hold a ticket.
    pub status: Option<&'a Status>,
    /// A result or problem to show instead of the state's usual message.
    pub message: Option<&'a str>,
    /// Idempotency key for the no-JavaScript invest form: fixed per page
    /// render, so resubmitting the same form cannot invest twice.
    pub form_key: &'a str,
}

/// Renders the page.
pub fn render(view: &View<'_>) -> String {
    let dash = || "–".to_string();
    let status = view.status;
    let refresh = status
        .map(|s| s.poll_after_ms.div_ceil(1000).clamp(1, 30))
        .unwrap_or(10);
    let state_message = view
        .message
        .map(str::to_string)
        .or_else(|| status.map(|s| state_message(s).to_string()))
        .unwrap_or_else(|| "Joining the queue…".to_string());
    let position = match status {
        Some(s) if s.state == VisitorState::Prequeue => "drawn at opening".to_string(),
        Some(s) => s
            .position
            .filter(|p| *p > 0)
            .map(|p| p.to_string())
            .unwrap_or_else(dash),
        None => dash(),
    };
    let ahead = status
        .and_then(|s| s.people_ahead)
        .map(|n| n.to_string())
        .unwrap_or_else(dash);
    let eta = status
        .and_then(|s| s.eta_seconds)
        .map(human_duration)
        .unwrap_or_else(dash);
    let round_progress = status
        .filter(|s| s.cap_pence > 0)
        .map(|s| format!("{:.3}", s.raised_pence as f64 / s.cap_pence as f64))
        .unwrap_or_else(|| "0".into());
    let action = match status {
        None => r#"<form method="post" action="/api/join"><button type="submit">Join the queue</button></form>"#.to_string(),
        Some(s) if s.state == VisitorState::Admitted => format!(
            r#"<form method="post" action="/invest">
      <input type="hidden" name="key" value="{}">
      <label for="nojs-investor">Investor id</label><input id="nojs-investor" name="investor_id" required>
      <label for="nojs-amount">Amount (£)</label><input id="nojs-amount" name="amount" inputmode="decimal" required>
      <button type="submit">Invest</button>
    </form>"#,
            html_escape(view.form_key)
        ),
        Some(_) => String::new(),
    };
    TEMPLATE
        .replace("{{ROUND}}", &html_escape(view.round))
        .replace("{{REFRESH_SECONDS}}", &refresh.to_string())
        .replace("{{STATE_MESSAGE}}", &html_escape(&state_message))
        .replace("{{POSITION}}", &position)
        .replace("{{AHEAD}}", &ahead)
        .replace("{{ETA}}", &eta)
        .replace(
            "{{QUEUE_PROGRESS}}",
            if status.is_some_and(|s| s.state == VisitorState::Admitted) {
                "1"
            } else {
                "0"
            },
        )
        .replace(
            "{{RAISED}}",
            &status.map(|s| pounds(s.raised_pence)).unwrap_or_else(dash),
        )
        .replace(
            "{{CAP}}",
            &status.map(|s| pounds(s.cap_pence)).unwrap_or_else(dash),
        )
        .replace("{{ROUND_PROGRESS}}", &round_progress)
        .replace("{{NOSCRIPT_ACTION}}", &action)
}

/// The sentence for each state (the same words the script uses).
pub fn state_message(status: &Status) -> String {
    match status.state {
        VisitorState::Prequeue => {
            let registered = match status.registered {
                Some(1) => " 1 person has registered so far.".to_string(),
                Some(n) => format!(" {n} people have registered so far."),
                None => String::new(),
            };
            let opens = match status.opens_in_seconds {
                Some(s) => format!(" The round opens in {}.", human_duration(s)),
                None => String::new(),
            };
            format!(
                "You are registered in the pre-queue.{registered}{opens} When it opens, everyone registered gets a random place ahead of later arrivals: arriving early or refreshing changes nothing."
            )
        }
        VisitorState::Scheduled => "The round has not opened yet. You keep your place.".to_string(),
        VisitorState::Waiting => {
            "You are in the queue. We will let you in automatically.".to_string()
        }
        VisitorState::Admitted => "It's your turn! Enter your investment below.".to_string(),
        VisitorState::Paused => {
            "Admission is paused for a moment. You keep your place.".to_string()
        }
        VisitorState::Full => {
            "The round is full. If amounts are released, the room reopens.".to_string()
        }
        VisitorState::Closed => "The round is closed.".to_string(),
    }
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

fn pounds(pence: i64) -> String {
    format!("£{}.{:02}", pence / 100, (pence % 100).abs())
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
