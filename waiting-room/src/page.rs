//! The waiting-room page: one self-contained HTML document (no CDN, no build
//! step).
//!
//! The server renders what it knows into it, so it works without JavaScript:
//! the round's name, who is signed in ("Investing as …", with a sign-out
//! form), a heading that follows the visitor's stage (sign in, pre-queue,
//! queue, admitted, invested, full, closed), the queue figures and the
//! round's progress. The wait reads "about N minutes", with a plain
//! sentence when the estimate is uncertain and why (the room is full, the
//! rate just changed, admission just started or is paused). When the round
//! will probably sell out before the visitor's turn it says so plainly
//! ("about 120 investments' worth left; 4,000 people ahead of you"), and a
//! visitor holding a place can give it up with a "Leave the queue" form
//! (`POST /leave`). While admission is paused (or the round not yet open)
//! there is no queue progress bar: one near full at the front of a queue
//! that is not moving would promise a turn that is not coming yet. Without
//! JavaScript it refreshes itself while there is something to wait for,
//! offers a "join" button, and when admitted a plain form that says when
//! the pass expires and invests through `POST /invest` (amount and a fixed
//! idempotency key: the investor comes from the signed ticket, never from a
//! field; a form that comes back keeps the amount typed). A receipt
//! (`/receipt/<id>`, or the script's) names the investor and the time, and
//! offers "Invest more" while the pass runs.
//!
//! With JavaScript it joins by itself, polls `/api/status` at
//! `poll_after_ms` and updates in place (`aria-live`), leaves through
//! `POST /api/leave` (the same form, submitted by the script); when admitted it
//! claims the pass, counts down its lifetime, previews the shares an amount
//! buys (the Invest button is disabled while the preview refuses the
//! amount) and invests through `POST /api/investments`, then shows a receipt
//! that follows the investment until it settles. What the script needs from
//! the server (stage, sign-in address, limits, the pass's expiry) is in
//! `data-*` attributes on `<main>`.
//!
//! Every value is HTML-escaped, and the template is filled in one pass, so
//! text that looks like a placeholder (a round or investor name) stays text.

use crowdgate_protocol::api::{
    EtaUncertainty, Investment, InvestmentStatus, SellOutForecast, VisitorState,
};
pub use crowdgate_protocol::html::escape as html_escape;
use crowdgate_protocol::money::{grouped, pounds};
use crowdgate_protocol::{Investor, RoomPhase, RoomState, Status};

use crate::template::{Template, slot_count};

const TEMPLATE: &str = include_str!("page.html");
/// The page, split into text and placeholders when the component is built.
const PAGE: Template<{ slot_count(TEMPLATE) }> = Template::parse(TEMPLATE);

/// What the page shows before JavaScript (if any) takes over.
pub struct View<'a> {
    /// The round as the edge caches it: name (`room.display_name()`),
    /// phase, min/max investment, share price, raised, cap. `None` when core
    /// is unreachable.
    pub room: Option<&'a RoomState>,
    /// The round id (fallback name).
    pub round_id: &'a str,
    /// Where the round's URLs start (`/r/{round}`, or empty for the
    /// default round's bare paths): the page's `<base>`, so its links,
    /// forms and API calls (all relative) stay in its round.
    pub base: &'a str,
    /// The visitor's status, when they hold a ticket.
    pub status: Option<&'a Status>,
    /// A result or problem to show instead of the state's usual message.
    pub message: Option<&'a str>,
    /// Idempotency key for the no-JavaScript invest form: fixed per page
    /// render, so resubmitting the same form cannot invest twice.
    pub form_key: &'a str,
    /// Who is signed in (from the ticket, or the identity cookie before
    /// joining).
    pub investor: Option<&'a Investor>,
    /// Set when the room needs a signed-in investor and the visitor has no
    /// usable identity.
    pub sign_in: Option<SignIn<'a>>,
    /// The platform's sign-in page (configured per deployment), on every
    /// page: the script needs it when `/api/join` refuses a sign-in that
    /// looked usable when the page was rendered. `None` if not configured.
    pub sign_in_url: Option<&'a str>,
    /// An investment to show as a receipt (`/receipt/<id>`).
    pub receipt: Option<&'a Investment>,
    /// When the visitor's pass expires (Unix seconds), once claimed: the
    /// page without JavaScript says so, and a receipt offers to invest more
    /// while it runs.
    pub pass_expires_at: Option<u64>,
    /// The amount the visitor typed, put back into the no-JavaScript form
    /// when it comes back (busy, refused).
    pub amount: Option<&'a str>,
    /// Unix seconds of this render ("about N minutes" left on the pass).
    pub now_s: u64,
}

/// Why and where to sign in.
pub struct SignIn<'a> {
    /// The platform's sign-in page (configured per deployment); `None` if
    /// not configured.
    pub url: Option<&'a str>,
    /// Why: "You need to sign in to join the queue.", "Your sign-in has
    /// expired: sign in again.", "Your sign-in was not accepted: …".
    pub reason: &'a str,
}

/// Where the visitor is, which decides the heading and what is shown. The
/// script uses the same names (`data-stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    SignIn,
    /// No ticket yet.
    Joining,
    Prequeue,
    /// Waiting, scheduled or paused: holding a numbered place.
    Queue,
    Admitted,
    Invested,
    /// An investment whose settlement failed.
    Failed,
    Full,
    Closed,
}

impl Stage {
    fn of(view: &View<'_>) -> Stage {
        if view.sign_in.is_some() {
            return Stage::SignIn;
        }
        if let Some(receipt) = view.receipt {
            return match receipt.status {
                InvestmentStatus::Failed => Stage::Failed,
                _ => Stage::Invested,
            };
        }
        match view.status.map(|s| s.state) {
            Some(VisitorState::Prequeue) => Stage::Prequeue,
            Some(VisitorState::Waiting | VisitorState::Scheduled | VisitorState::Paused) => {
                Stage::Queue
            }
            Some(VisitorState::Admitted) => Stage::Admitted,
            Some(VisitorState::Full) => Stage::Full,
            Some(VisitorState::Closed) => Stage::Closed,
            None => match view.room.map(|r| r.phase) {
                Some(RoomPhase::Full) => Stage::Full,
                Some(RoomPhase::Closed) => Stage::Closed,
                _ => Stage::Joining,
            },
        }
    }

    /// The name in `data-stage` (the script's names).
    fn as_str(self) -> &'static str {
        match self {
            Stage::SignIn => "signin",
            Stage::Joining => "joining",
            Stage::Prequeue => "prequeue",
            Stage::Queue => "queue",
            Stage::Admitted => "admitted",
            Stage::Invested => "invested",
            Stage::Failed => "failed",
            Stage::Full => "full",
            Stage::Closed => "closed",
        }
    }

    /// The page's heading (the same words the script uses).
    fn heading(self) -> &'static str {
        match self {
            Stage::SignIn => "Sign in to join the queue",
            Stage::Joining => "Join the queue",
            Stage::Prequeue => "You're registered for the draw",
            Stage::Queue => "You are in the queue",
            Stage::Admitted => "It's your turn",
            Stage::Invested => "You have invested",
            Stage::Failed => "Your investment did not go through",
            Stage::Full => "This round is full",
            Stage::Closed => "This round is closed",
        }
    }

    /// Whether the queue figures (position, people ahead, wait) mean
    /// anything here.
    fn shows_queue(self) -> bool {
        matches!(self, Stage::Joining | Stage::Prequeue | Stage::Queue)
    }

    /// Whether a visitor here holds a place they can give up (the "Leave
    /// the queue" form): in the pre-queue or the queue, not yet admitted.
    fn can_leave(self) -> bool {
        matches!(self, Stage::Prequeue | Stage::Queue)
    }

    /// Whether a page without JavaScript should refresh itself: only while
    /// there is something to wait for, and never under a half-typed amount
    /// or a receipt.
    fn refreshes(self) -> bool {
        matches!(
            self,
            Stage::Prequeue | Stage::Queue | Stage::Full | Stage::Joining
        )
    }
}

/// Renders the page.
pub fn render(view: &View<'_>) -> String {
    let stage = Stage::of(view);
    let mut values = vec![
        ("ROUND_NAME", html_escape(round_name(view))),
        ("BASE", html_escape(&format!("{}/", view.base))),
        ("STAGE", stage.as_str().to_string()),
        ("HEADING", html_escape(stage.heading())),
        ("STATE_MESSAGE", html_escape(&message_of(view, stage))),
        (
            "STATE_HIDDEN",
            hidden(stage == Stage::SignIn && view.message.is_none()),
        ),
        ("SIGN_IN", sign_in_panel(view.sign_in.as_ref())),
        ("SIGN_IN_HIDDEN", hidden(stage != Stage::SignIn)),
        ("LIMITS", html_escape(&limits_of(view))),
        ("NOSCRIPT_ACTION", noscript_action(view, stage)),
    ];
    values.extend(refresh_values(view, stage));
    values.push(("DRAW_NOTE", draw_note(view, stage)));
    values.extend(data_values(view));
    values.extend(investor_values(view, stage));
    values.extend(queue_values(view.status, stage));
    values.extend(leave_values(view.status, stage));
    values.extend(progress_values(view));
    values.extend(receipt_values(view.receipt, investor_label(view)));
    PAGE.fill(&values)
}

/// Whether a receipt offers to invest more: the investment went through
/// and the visitor's pass still runs (`data-pass-expires` tells the script
/// the same, which shows its own button then).
fn can_invest_more(view: &View<'_>, stage: Stage) -> bool {
    stage == Stage::Invested && view.pass_expires_at.is_some_and(|at| at > view.now_s)
}

/// One placeholder's name and its (already escaped) value.
type Value = (&'static str, String);

/// The no-JavaScript refresh, only while there is something to wait for.
fn refresh_values(view: &View<'_>, stage: Stage) -> [Value; 2] {
    if !stage.refreshes() {
        return [
            ("NOSCRIPT_REFRESH", String::new()),
            ("REFRESH_NOTE", String::new()),
        ];
    }
    let seconds = view
        .status
        .map(|s| s.poll_after_ms.div_ceil(1000).clamp(1, 30))
        .unwrap_or(10);
    [
        (
            "NOSCRIPT_REFRESH",
            format!(r#"<meta http-equiv="refresh" content="{seconds}">"#),
        ),
        (
            "REFRESH_NOTE",
            format!(r#"<p class="muted">This page refreshes itself every {seconds} seconds.</p>"#),
        ),
    ]
}

/// The pre-queue draw's commitment, for those it concerns (registered for
/// the draw, or waiting in the queue it made): proof that the draw was fixed
/// before anyone joined, and where to check one's number.
fn draw_note(view: &View<'_>, stage: Stage) -> String {
    let Some(draw) = view.room.and_then(|r| r.draw.as_ref()) else {
        return String::new();
    };
    if !matches!(stage, Stage::Prequeue | Stage::Queue) {
        return String::new();
    }
    let when = if draw.revealed.is_some() {
        "It is revealed now"
    } else {
        "It is revealed at opening"
    };
    format!(
        r#"<p class="muted" id="draw-note">The pre-queue draw is fixed in advance: its commitment is <code>{}</code>. {when}, so you can check your number at <a href="api/draw">api/draw</a>.</p>"#,
        html_escape(&draw.commitment)
    )
}

/// What the script needs from the server: `data-*` attributes on `<main>`
/// (numbers in pence; empty when unknown).
fn data_values(view: &View<'_>) -> [Value; 9] {
    let room = view.room;
    let pence = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
    let sign_in_url = view
        .sign_in
        .as_ref()
        .and_then(|s| s.url)
        .or(view.sign_in_url)
        .unwrap_or("");
    [
        ("HAS_TICKET", yes(view.status.is_some())),
        ("SIGN_IN_URL", html_escape(sign_in_url)),
        ("MIN", pence(room.map(|r| r.min_investment_pence))),
        ("MAX", pence(room.map(|r| r.max_investment_pence))),
        (
            "INVESTOR_MAX",
            pence(view.investor.and_then(|i| i.max_investment_pence)),
        ),
        ("SHARE_PRICE", pence(room.map(|r| r.share_price_pence))),
        ("REMAINING", pence(room.map(remaining))),
        (
            "PASS_EXPIRES",
            view.pass_expires_at
                .map(|at| at.to_string())
                .unwrap_or_default(),
        ),
        (
            "INVESTOR_LABEL",
            html_escape(investor_label(view).unwrap_or("")),
        ),
    ]
}

/// "Investing as …", hidden when nobody is signed in or the sign-in is no
/// longer usable.
fn investor_values(view: &View<'_>, stage: Stage) -> [Value; 2] {
    let investor = investor_label(view);
    [
        (
            "INVESTOR_HIDDEN",
            hidden(investor.is_none() || stage == Stage::SignIn),
        ),
        ("INVESTOR", html_escape(investor.unwrap_or(""))),
    ]
}

/// The queue figures: position, people ahead, wait, and why the wait may
/// be off.
fn queue_values(status: Option<&Status>, stage: Stage) -> [Value; 8] {
    let note = status.and_then(|s| s.eta_uncertain).map(eta_note);
    // While admission is paused (or the round not yet open) nobody moves:
    // a bar near full at the front of the queue would promise a turn that
    // is not coming yet.
    let held =
        status.is_some_and(|s| matches!(s.state, VisitorState::Paused | VisitorState::Scheduled));
    [
        ("QUEUE_PROGRESS_HIDDEN", hidden(held)),
        ("QUEUE_HIDDEN", hidden(!stage.shows_queue())),
        ("POSITION", position(status)),
        ("AHEAD", figure(status.and_then(|s| s.people_ahead))),
        ("ETA", eta(status)),
        ("ETA_NOTE_HIDDEN", hidden(note.is_none())),
        ("ETA_NOTE", html_escape(note.unwrap_or(""))),
        ("QUEUE_PROGRESS", queue_progress(stage).to_string()),
    ]
}

/// The sell-out forecast (only while waiting for a turn) and the "Leave
/// the queue" form (while holding a place).
fn leave_values(status: Option<&Status>, stage: Stage) -> [Value; 3] {
    let forecast = status
        .and_then(|s| s.sell_out.as_ref())
        .filter(|_| stage == Stage::Queue);
    [
        ("SELL_OUT_HIDDEN", hidden(forecast.is_none())),
        (
            "SELL_OUT",
            html_escape(&forecast.map(sell_out_sentence).unwrap_or_default()),
        ),
        (
            "LEAVE_HIDDEN",
            hidden(status.is_none() || !stage.can_leave()),
        ),
    ]
}

/// The sell-out forecast as a person would say it (the same words the
/// script uses): "The round will probably sell out before your turn: about
/// 120 investments' worth left; 4,000 people ahead of you. …"
pub fn sell_out_sentence(forecast: &SellOutForecast) -> String {
    let left = match forecast.investments_left {
        0 => "less than one investment's worth left".to_string(),
        1 => "about 1 investment's worth left".to_string(),
        n => format!("about {} investments' worth left", grouped(n as i64)),
    };
    let ahead = match forecast.people_ahead {
        1 => "1 person ahead of you".to_string(),
        n => format!("{} people ahead of you", grouped(n as i64)),
    };
    format!(
        "The round will probably sell out before your turn: {left}; {ahead}. You can keep your place in case it does not, or leave the queue."
    )
}

/// Raised of cap, and the round's progress bar.
fn progress_values(view: &View<'_>) -> [Value; 3] {
    let (raised, cap) = raised_and_cap(view);
    [
        ("RAISED", raised.map(pounds).unwrap_or_else(dash)),
        ("CAP", cap.map(pounds).unwrap_or_else(dash)),
        ("ROUND_PROGRESS", round_progress(raised, cap)),
    ]
}

/// The receipt of an investment (empty and hidden otherwise: the script
/// fills the same elements). The investor is named as on the page
/// (`investor`: their name, or their id when they have none), and the time
/// is the investment's, in UTC (the script shows it in local time).
fn receipt_values(receipt: Option<&Investment>, investor: Option<&str>) -> [Value; 10] {
    let text = |f: fn(&Investment) -> String| html_escape(&receipt.map(f).unwrap_or_default());
    let failed = receipt.is_some_and(|r| r.status == InvestmentStatus::Failed);
    let investor = receipt.map(|r| investor.unwrap_or(&r.investor_id));
    [
        ("RECEIPT_HIDDEN", hidden(receipt.is_none())),
        (
            "RECEIPT_CLASS",
            if failed { "bad" } else { "ok" }.to_string(),
        ),
        ("RECEIPT_ID", text(|r| r.investment_id.clone())),
        ("RECEIPT_INVESTOR", html_escape(investor.unwrap_or(""))),
        (
            "RECEIPT_TIME_ISO",
            text(|r| rfc3339(r.accepted_at_ms / 1000)),
        ),
        (
            "RECEIPT_TIME",
            text(|r| utc_date_time(r.accepted_at_ms / 1000)),
        ),
        ("RECEIPT_AMOUNT", text(|r| pounds(r.amount_pence))),
        ("RECEIPT_SHARES", text(|r| grouped(r.shares))),
        ("RECEIPT_STATUS", text(receipt_status)),
        ("RECEIPT_NOTE", text(|r| receipt_note(r).to_string())),
    ]
}

/// The round's name for people: the room's, the status's, or the id.
fn round_name<'v>(view: &View<'v>) -> &'v str {
    if let Some(room) = view.room {
        return room.display_name();
    }
    match view.status {
        Some(s) if !s.round_name.trim().is_empty() => &s.round_name,
        _ => view.round_id,
    }
}

/// "Investing as …": the investor's name, or their id when unnamed.
fn investor_label<'v>(view: &View<'v>) -> Option<&'v str> {
    let named = |name: Option<&'v String>| name.map(|n| n.trim()).filter(|n| !n.is_empty());
    if let Some(investor) = view.investor {
        return Some(named(investor.name.as_ref()).unwrap_or(&investor.id));
    }
    let status = view.status?;
    named(status.investor_name.as_ref()).or(status.investor_id.as_deref())
}

/// The most this investor may put in: the smaller of the round's maximum
/// and their own.
fn effective_max(room: &RoomState, investor: Option<&Investor>) -> i64 {
    match investor.and_then(|i| i.max_investment_pence) {
        Some(own) => own.min(room.max_investment_pence),
        None => room.max_investment_pence,
    }
}

/// The limits line above the amount (the same words the script uses).
fn limits_of(view: &View<'_>) -> String {
    let Some(room) = view.room else {
        return String::new();
    };
    let max = effective_max(room, view.investor);
    if max < room.min_investment_pence {
        return format!(
            "Your own limit of {} is below this round's minimum of {}, so you cannot invest in this round.",
            pounds(max),
            pounds(room.min_investment_pence)
        );
    }
    let yours = if max < room.max_investment_pence {
        " (your limit)"
    } else {
        ""
    };
    let mut line = format!(
        "Invest between {} and {}{yours}, in whole shares of {}.",
        pounds(room.min_investment_pence),
        pounds(max),
        pounds(room.share_price_pence)
    );
    let left = remaining(room);
    if left < max {
        line.push_str(&format!(" The round can take {} more.", pounds(left)));
    }
    line
}

/// The sentence under the heading: the caller's message, or the stage's.
fn message_of(view: &View<'_>, stage: Stage) -> String {
    if let Some(message) = view.message {
        return message.to_string();
    }
    if let Some(status) = view.status
        && matches!(
            stage,
            Stage::Prequeue | Stage::Queue | Stage::Admitted | Stage::Full | Stage::Closed
        )
    {
        return state_message(status);
    }
    match stage {
        Stage::SignIn => String::new(),
        Stage::Invested => match view.receipt {
            Some(r) => format!(
                "{}: {} for {} shares (reference {}). {}",
                if r.status == InvestmentStatus::Settled {
                    "Settled"
                } else {
                    "Accepted"
                },
                pounds(r.amount_pence),
                grouped(r.shares),
                r.investment_id,
                if r.status == InvestmentStatus::Settled {
                    "The shares are yours. Thank you."
                } else {
                    "Thank you: it settles in a moment."
                }
            ),
            None => "Thank you: your investment is accepted. It settles in a moment.".to_string(),
        },
        Stage::Failed => "Your investment could not be settled; nothing was taken.".to_string(),
        Stage::Full => full_message().to_string(),
        Stage::Closed => closed_message().to_string(),
        _ => "Join the queue to get your place.".to_string(),
    }
}

/// The sentence for each state (the same words the script uses).
pub fn state_message(status: &Status) -> String {
    match status.state {
        VisitorState::Prequeue => {
            let registered = match status.registered {
                Some(1) => " 1 person has registered so far.".to_string(),
                Some(n) => format!(" {} people have registered so far.", grouped(n as i64)),
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
        VisitorState::Admitted => {
            "Enter your investment below before your pass runs out.".to_string()
        }
        VisitorState::Paused => {
            "Admission is paused for a moment. You keep your place.".to_string()
        }
        VisitorState::Full => full_message().to_string(),
        VisitorState::Closed => closed_message().to_string(),
    }
}

fn full_message() -> &'static str {
    "The round is full. If amounts are released, the room reopens."
}

fn closed_message() -> &'static str {
    "The round is closed: it takes no more investments."
}

/// The sign-in panel's contents: the reason, and the way to sign in.
fn sign_in_panel(sign_in: Option<&SignIn<'_>>) -> String {
    let Some(sign_in) = sign_in else {
        return r#"<p id="sign-in-reason"></p>
    <p id="sign-in-none" hidden>Sign in through the platform that sent you here.</p>
    <a id="sign-in-link" class="button" href="" hidden>Sign in</a>"#
            .to_string();
    };
    let reason = html_escape(sign_in.reason);
    match sign_in.url {
        Some(url) => format!(
            r#"<p id="sign-in-reason">{reason}</p>
    <p id="sign-in-none" hidden>Sign in through the platform that sent you here.</p>
    <a id="sign-in-link" class="button" href="{}">Sign in</a>"#,
            html_escape(url)
        ),
        None => format!(
            r#"<p id="sign-in-reason">{reason}</p>
    <p id="sign-in-none">Sign in through the platform that sent you here.</p>
    <a id="sign-in-link" class="button" href="" hidden>Sign in</a>"#
        ),
    }
}

/// What a browser without JavaScript can do here.
fn noscript_action(view: &View<'_>, stage: Stage) -> String {
    match stage {
        Stage::Joining if view.status.is_none() => {
            r#"<form method="post" action="api/join"><button type="submit">Join the queue</button></form>"#
                .to_string()
        }
        Stage::Admitted => invest_form(view, "Invest"),
        Stage::Invested if can_invest_more(view, stage) => invest_form(view, "Invest more"),
        _ => String::new(),
    }
}

/// The no-JavaScript investment form: how long the pass lasts, the limits,
/// the amount (as typed, when the form comes back) and `button`.
fn invest_form(view: &View<'_>, button: &str) -> String {
    format!(
        r#"<form method="post" action="invest">
      <input type="hidden" name="key" value="{}">
      <p id="nojs-pass">{}</p>
      <p class="muted">{}</p>
      <label for="nojs-amount">Amount (£)</label><input id="nojs-amount" name="amount" inputmode="decimal" autocomplete="off" required value="{}">
      <button type="submit" id="nojs-submit">{}</button>
    </form>"#,
        html_escape(view.form_key),
        html_escape(&pass_line(view)),
        html_escape(&limits_of(view)),
        html_escape(view.amount.unwrap_or("")),
        html_escape(button),
    )
}

/// How long the pass lasts, for a page that cannot count down: when it
/// expires (UTC) and about how long that is from this render; before it is
/// claimed, its lifetime.
fn pass_line(view: &View<'_>) -> String {
    match view.pass_expires_at {
        Some(at) => format!(
            "Your pass expires at {} ({} from when this page was shown); invest before then.",
            utc_time(at),
            about(at.saturating_sub(view.now_s)),
        ),
        None => match view.room {
            Some(room) => format!("A pass lasts {}.", about(room.pass_ttl_seconds)),
            None => String::new(),
        },
    }
}

/// The receipt's status word, with the reason when settlement failed.
fn receipt_status(investment: &Investment) -> String {
    match investment.status {
        InvestmentStatus::Accepted => "accepted".to_string(),
        InvestmentStatus::Settled => "settled".to_string(),
        InvestmentStatus::Failed => format!(
            "failed — {}; nothing was taken.",
            match investment.failure_reason.as_deref() {
                Some("insufficient_funds") => "there was not enough money in your account",
                Some(other) => other,
                None => "settlement was refused",
            }
        ),
    }
}

/// What the receipt's status means (without JavaScript nothing updates it).
fn receipt_note(investment: &Investment) -> &'static str {
    match investment.status {
        InvestmentStatus::Accepted => {
            "Your investment is recorded against the round. It settles in a moment: that is when the money is taken and the shares are yours. Keep the reference; reloading this page shows the receipt again."
        }
        InvestmentStatus::Settled => "Settled: the money is taken and the shares are yours.",
        InvestmentStatus::Failed => "The amount is released back to the round.",
    }
}

/// What the round can still take.
fn remaining(room: &RoomState) -> i64 {
    (room.cap_pence - room.raised_pence).max(0)
}

fn raised_and_cap(view: &View<'_>) -> (Option<i64>, Option<i64>) {
    match (view.room, view.status) {
        (Some(room), _) => (Some(room.raised_pence), Some(room.cap_pence)),
        (None, Some(status)) => (Some(status.raised_pence), Some(status.cap_pence)),
        (None, None) => (None, None),
    }
}

fn round_progress(raised: Option<i64>, cap: Option<i64>) -> String {
    match (raised, cap) {
        (Some(raised), Some(cap)) if cap > 0 => {
            format!("{:.3}", (raised as f64 / cap as f64).clamp(0.0, 1.0))
        }
        _ => "0".to_string(),
    }
}

fn queue_progress(stage: Stage) -> &'static str {
    if stage == Stage::Admitted { "1" } else { "0" }
}

fn position(status: Option<&Status>) -> String {
    match status {
        Some(s) if s.state == VisitorState::Prequeue => "drawn at opening".to_string(),
        Some(s) => figure(s.position.filter(|p| *p > 0)),
        None => dash(),
    }
}

fn eta(status: Option<&Status>) -> String {
    match status {
        Some(s) if s.state == VisitorState::Admitted => "now".to_string(),
        Some(s) => s.eta_seconds.map(about).unwrap_or_else(dash),
        None => dash(),
    }
}

/// Why the wait may be off, in a sentence (the same words the script uses).
fn eta_note(doubt: EtaUncertainty) -> &'static str {
    match doubt {
        EtaUncertainty::RoomFull => {
            "The estimate is uncertain: admission is held back while the room is full, so people are let in only as others finish."
        }
        EtaUncertainty::RateChanged => {
            "The estimate is uncertain: the admission rate has just been changed."
        }
        EtaUncertainty::LittleHistory => {
            "The estimate is uncertain: admission has only just started, so it uses the planned rate until the real one is measured."
        }
        EtaUncertainty::Paused => "There is no estimate while admission is paused.",
    }
}

/// A wait as people say it: "under a minute", "about 4 minutes", "about 2
/// hours" (an estimate, so never to the second).
fn about(seconds: u64) -> String {
    match seconds {
        s if s < 60 => "under a minute".to_string(),
        s if s < 90 => "about 1 minute".to_string(),
        s if s < 90 * 60 => format!("about {} minutes", (s + 30) / 60),
        s => format!("about {} hours", (s + 1800) / 3600),
    }
}

/// A Unix time as RFC 3339 (`2026-12-06T00:41:05Z`), for `<time datetime>`.
fn rfc3339(unix_s: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_s);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A Unix time as a person reads it, in UTC: "2026-12-06 00:41:05 UTC" (the
/// server does not know the visitor's time zone; the script shows local time).
fn utc_date_time(unix_s: u64) -> String {
    let text = rfc3339(unix_s);
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// The time of day of a Unix time, in UTC: "00:41:05 UTC".
fn utc_time(unix_s: u64) -> String {
    let date_time = utc_date_time(unix_s);
    date_time
        .split_once(' ')
        .map_or(date_time.clone(), |(_, time)| time.to_string())
}

fn figure(value: Option<u64>) -> String {
    value.map(|n| grouped(n as i64)).unwrap_or_else(dash)
}

fn dash() -> String {
    "–".to_string()
}

fn hidden(hide: bool) -> String {
    if hide { " hidden" } else { "" }.to_string()
}

fn yes(flag: bool) -> String {
    if flag { "yes" } else { "" }.to_string()
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(phase: RoomPhase) -> RoomState {
        RoomState {
            round: "demo-2025".into(),
            name: "Demo Bank plc — community round".into(),
            identity: Default::default(),
            phase,
            admitted_up_to: 10,
            issued: 40,
            rate_per_minute: 60,
            achieved_rate_milli_per_minute: 0,
            achieved_rate_history_seconds: 0,
            rate_changed_at_ms: 0,
            raised_pence: 12_500_000,
            investor_count: 3,
            cap_pence: 100_000_000,
            min_investment_pence: 1_000,
            max_investment_pence: 500_000,
            share_price_pence: 100,
            pass_ttl_seconds: 300,
            opens_at_ms: 0,
            prequeue_size: 0,
            deciding: 0,
            accepted_pence: 0,
            released_pence: 0,
            draw: None,
            as_of_ms: 0,
        }
    }

    fn status(state: VisitorState) -> Status {
        Status {
            round: "demo-2025".into(),
            round_name: "Demo Bank plc — community round".into(),
            investor_id: Some("inv-42".into()),
            investor_name: Some("Ada Lovelace".into()),
            state,
            queue_number: Some(12),
            position: Some(2),
            people_ahead: Some(1),
            registered: None,
            eta_seconds: Some(90),
            eta_uncertain: None,
            sell_out: None,
            poll_after_ms: 4_000,
            opens_in_seconds: None,
            ticket: None,
            raised_pence: 12_500_000,
            cap_pence: 100_000_000,
        }
    }

    fn investor() -> Investor {
        Investor {
            id: "inv-42".into(),
            name: Some("Ada Lovelace".into()),
            max_investment_pence: Some(200_000),
        }
    }

    fn view<'a>(
        room: Option<&'a RoomState>,
        status: Option<&'a Status>,
        investor: Option<&'a Investor>,
    ) -> View<'a> {
        View {
            room,
            round_id: "demo-2025",
            base: "",
            status,
            message: None,
            form_key: "nojs-1",
            investor,
            sign_in: None,
            sign_in_url: Some("https://platform.example/login"),
            receipt: None,
            pass_expires_at: None,
            amount: None,
            now_s: 0,
        }
    }

    fn heading(html: &str) -> &str {
        let start = html.find(r#"<h1 id="heading">"#).unwrap() + r#"<h1 id="heading">"#.len();
        &html[start..start + html[start..].find("</h1>").unwrap()]
    }

    /// A round's page keeps every link, form and API call in its round: the
    /// page's `<base>` is the round's, and nothing on it starts from `/`.
    #[test]
    fn every_address_on_the_page_stays_in_its_round() {
        let room = room(RoomPhase::Open);
        let who = investor();
        let admitted = status(VisitorState::Admitted);
        for base in ["", "/r/spring-27"] {
            let html = render(&View {
                base,
                ..view(Some(&room), Some(&admitted), Some(&who))
            });
            let base_tag = format!(r#"<base href="{base}/">"#);
            assert!(html.contains(&base_tag), "{base}");
            let html = html.replace(&base_tag, "");
            for absolute in [r#"action="/"#, r#"href="/"#, r#"api("/"#, r#"fetch("/"#] {
                assert!(!html.contains(absolute), "{base}: {absolute}");
            }
        }
    }

    #[test]
    fn the_draw_commitment_is_shown_to_those_it_concerns() {
        let mut scheduled = room(RoomPhase::Scheduled);
        scheduled.draw = Some(crowdgate_protocol::api::PublicDraw {
            commitment: "ab12".repeat(16),
            revealed: None,
        });
        let who = investor();
        let prequeue = status(VisitorState::Prequeue);
        let html = render(&view(Some(&scheduled), Some(&prequeue), Some(&who)));
        assert!(html.contains(&format!("<code>{}</code>", "ab12".repeat(16))));
        assert!(html.contains("It is revealed at opening"));
        assert!(html.contains(r#"<a href="api/draw">"#));
        // Once admitted the draw no longer concerns the visitor; without a
        // draw (an older core) nothing is said.
        let admitted = status(VisitorState::Admitted);
        let html = render(&view(Some(&scheduled), Some(&admitted), Some(&who)));
        assert!(!html.contains("draw-note"));
        let html = render(&view(
            Some(&room(RoomPhase::Open)),
            Some(&prequeue),
            Some(&who),
        ));
        assert!(!html.contains("draw-note"));
    }

    #[test]
    fn the_heading_follows_the_state() {
        let open = room(RoomPhase::Open);
        let who = investor();
        for (state, expected) in [
            (VisitorState::Prequeue, "You&#39;re registered for the draw"),
            (VisitorState::Waiting, "You are in the queue"),
            (VisitorState::Scheduled, "You are in the queue"),
            (VisitorState::Paused, "You are in the queue"),
            (VisitorState::Admitted, "It&#39;s your turn"),
            (VisitorState::Full, "This round is full"),
            (VisitorState::Closed, "This round is closed"),
        ] {
            let s = status(state);
            let html = render(&view(Some(&open), Some(&s), Some(&who)));
            assert_eq!(heading(&html), expected, "{state:?}");
            assert!(!html.contains("{{"), "a placeholder is left for {state:?}");
        }
        let closed = room(RoomPhase::Closed);
        let html = render(&view(Some(&closed), None, None));
        assert_eq!(heading(&html), "This round is closed");
        assert!(html.contains(r#"<div id="queue" hidden>"#));
        assert!(!html.contains(r#"action="api/join""#));
    }

    #[test]
    fn the_round_is_named_and_the_investor_shown() {
        let open = room(RoomPhase::Open);
        let s = status(VisitorState::Waiting);
        let who = investor();
        let html = render(&view(Some(&open), Some(&s), Some(&who)));
        assert!(html.contains("<title>Demo Bank plc — community round · Waiting room</title>"));
        assert!(html.contains(r#"id="round-name">Demo Bank plc — community round<"#));
        assert!(html.contains(r#"<span id="investor">Investing as Ada Lovelace</span>"#));
        assert!(html.contains(r#"action="signout""#));
        // The script can send them to sign in even when the page could not
        // tell they would need to.
        assert!(html.contains(r#"data-sign-in-url="https://platform.example/login""#));
        // Without a room: the status's name; without either, the id.
        let html = render(&view(None, Some(&s), None));
        assert!(html.contains(r#"id="round-name">Demo Bank plc — community round<"#));
        let html = render(&view(None, None, None));
        assert!(html.contains(r#"id="round-name">demo-2025<"#));
        assert!(html.contains(r#"id="investor-bar" hidden"#));
    }

    #[test]
    fn sign_in_offers_the_link_or_says_where() {
        let open = room(RoomPhase::Open);
        let mut v = view(Some(&open), None, None);
        v.sign_in = Some(SignIn {
            url: Some("https://platform.example/login?next=/&x=1"),
            reason: "You need to sign in to join the queue.",
        });
        let html = render(&v);
        assert_eq!(heading(&html), "Sign in to join the queue");
        assert!(html.contains(r#"data-stage="signin""#));
        assert!(
            html.contains(r#"data-sign-in-url="https://platform.example/login?next=/&amp;x=1""#)
        );
        assert!(html.contains(
            r#"<a id="sign-in-link" class="button" href="https://platform.example/login?next=/&amp;x=1">"#
        ));
        assert!(html.contains(
            r#"<section id="sign-in" class="message" role="status" aria-live="polite">"#
        ));
        assert!(!html.contains(r#"action="api/join""#));
        v.sign_in = Some(SignIn {
            url: None,
            reason: "Your sign-in has expired: sign in again.",
        });
        let html = render(&v);
        assert!(html.contains(
            r#"<p id="sign-in-none">Sign in through the platform that sent you here.</p>"#
        ));
        assert!(html.contains(r#"href="" hidden>Sign in</a>"#));
    }

    #[test]
    fn the_admitted_form_has_no_investor_field_and_the_limits() {
        let open = room(RoomPhase::Open);
        let s = status(VisitorState::Admitted);
        let who = investor();
        let html = render(&view(Some(&open), Some(&s), Some(&who)));
        assert!(!html.contains(r#"name="investor"#));
        assert!(!html.contains("Investor id"));
        assert!(html.contains("JSON.stringify({ amount_pence: amountPence })"));
        assert!(html.contains(r#"<input type="hidden" name="key" value="nojs-1">"#));
        assert!(html.contains(
            "Invest between £10.00 and £2,000.00 (your limit), in whole shares of £1.00."
        ));
        assert!(html.contains(r#"data-investor-max="200000""#));
        // No refresh under a half-typed amount.
        assert!(!html.contains(r#"http-equiv="refresh""#));
    }

    #[test]
    fn a_receipt_shows_the_investment() {
        let open = room(RoomPhase::Open);
        let s = status(VisitorState::Admitted);
        let who = investor();
        let investment = Investment {
            investment_id: "inv_abc".into(),
            round: "demo-2025".into(),
            investor_id: "inv-42".into(),
            amount_pence: 125_000,
            shares: 1250,
            status: InvestmentStatus::Accepted,
            accepted_at_ms: 1_796_517_662_000,
            settled_at_ms: None,
            failure_reason: None,
        };
        let mut v = view(Some(&open), Some(&s), Some(&who));
        v.receipt = Some(&investment);
        let html = render(&v);
        assert_eq!(heading(&html), "You have invested");
        assert!(html.contains(r#"<dd id="receipt-id">inv_abc</dd>"#));
        assert!(html.contains(r#"<dd id="receipt-amount">£1,250.00</dd>"#));
        assert!(html.contains(r#"<dd id="receipt-shares">1,250</dd>"#));
        assert!(html.contains(r#"<dd id="receipt-status">accepted</dd>"#));
        // The investor by name, and when (UTC without the script).
        assert!(html.contains(r#"<dd id="receipt-investor">Ada Lovelace</dd>"#));
        assert!(html.contains(
            r#"<dd id="receipt-time"><time datetime="2026-12-06T00:41:02Z">2026-12-06 00:41:02 UTC</time></dd>"#
        ));
        assert!(html.contains("Accepted: £1,250.00 for 1,250 shares (reference inv_abc)."));
        // No pass running: nothing more to invest with.
        assert!(!html.contains(r#"action="invest""#));
        // With the pass running, the form again, to invest more.
        v.pass_expires_at = Some(1_796_518_000);
        v.now_s = 1_796_517_700;
        let html = render(&v);
        assert!(html.contains(r#"action="invest""#));
        assert!(html.contains(r#">Invest more</button>"#));
        assert!(html.contains(
            "Your pass expires at 00:46:40 UTC (about 5 minutes from when this page was shown)"
        ));
        assert!(html.contains(r#"data-pass-expires="1796518000""#));
        // Not once it has run out.
        v.now_s = 1_796_518_000;
        assert!(!render(&v).contains(r#"action="invest""#));
    }

    #[test]
    fn a_paused_queue_has_no_progress_bar() {
        let open = room(RoomPhase::Open);
        for (state, shown) in [
            (VisitorState::Waiting, true),
            (VisitorState::Paused, false),
            (VisitorState::Scheduled, false),
        ] {
            let s = status(state);
            let html = render(&view(Some(&open), Some(&s), None));
            let bar = r#"aria-label="Progress through the queue"></progress>"#;
            assert_eq!(html.contains(bar), shown, "{state:?}");
        }
    }

    #[test]
    fn the_form_comes_back_with_the_amount_typed() {
        let open = room(RoomPhase::Open);
        let s = status(VisitorState::Admitted);
        let mut v = view(Some(&open), Some(&s), None);
        v.amount = Some("12\"5");
        let html = render(&v);
        assert!(html.contains(r#"required value="12&quot;5">"#), "{html}");
        assert!(html.contains(r#"<p id="nojs-pass">A pass lasts about 5 minutes.</p>"#));
    }

    #[test]
    fn the_wait_is_about_so_long_and_says_when_it_is_uncertain() {
        let open = room(RoomPhase::Open);
        let mut s = status(VisitorState::Waiting);
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(r#"<b id="eta">about 2 minutes</b>"#));
        assert!(html.contains(r#"<p class="muted" id="eta-note" hidden></p>"#));
        s.eta_uncertain = Some(EtaUncertainty::RoomFull);
        s.eta_seconds = Some(20 * 60);
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(r#"<b id="eta">about 20 minutes</b>"#));
        assert!(html.contains(
            r#"<p class="muted" id="eta-note">The estimate is uncertain: admission is held back while the room is full, so people are let in only as others finish.</p>"#
        ));
        // Paused: no figure, and why.
        let mut s = status(VisitorState::Paused);
        s.eta_seconds = None;
        s.eta_uncertain = Some(EtaUncertainty::Paused);
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(r#"<b id="eta">–</b>"#));
        assert!(html.contains("There is no estimate while admission is paused."));
        // The script has the same words for every reason.
        for doubt in [
            EtaUncertainty::RoomFull,
            EtaUncertainty::RateChanged,
            EtaUncertainty::LittleHistory,
            EtaUncertainty::Paused,
        ] {
            let word = serde_json::to_string(&doubt).unwrap();
            let line = format!("  {}: {:?},", word.trim_matches('"'), eta_note(doubt));
            assert!(TEMPLATE.contains(&line), "{line}");
        }
        for (seconds, text) in [
            (0, "under a minute"),
            (59, "under a minute"),
            (60, "about 1 minute"),
            (90, "about 2 minutes"),
            (3_599, "about 60 minutes"),
            (5_399, "about 90 minutes"),
            (5_400, "about 2 hours"),
        ] {
            assert_eq!(about(seconds), text, "{seconds}");
        }
    }

    fn forecast(investments_left: u64, people_ahead: u64) -> SellOutForecast {
        SellOutForecast {
            remaining_pence: 6_000_000,
            average_investment_pence: 50_000,
            investments_left,
            people_ahead,
        }
    }

    #[test]
    fn a_likely_sell_out_is_said_plainly_with_a_way_to_leave() {
        let open = room(RoomPhase::Open);
        let mut s = status(VisitorState::Waiting);
        s.people_ahead = Some(4_000);
        s.sell_out = Some(forecast(120, 4_000));
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(
            r#"<p class="message bad" id="sell-out" role="status" aria-live="polite">The round will probably sell out before your turn: about 120 investments&#39; worth left; 4,000 people ahead of you. You can keep your place in case it does not, or leave the queue.</p>"#
        ), "{html}");
        // The form works without JavaScript (the script submits it to
        // /api/leave instead).
        assert!(html.contains(
            r#"<form id="leave" method="post" action="leave"><button id="leave-button" type="submit" class="secondary">Leave the queue</button></form>"#
        ));
        // Singular and nothing-left wording, figures grouped as elsewhere.
        for (f, words) in [
            (
                forecast(1, 1),
                "about 1 investment's worth left; 1 person ahead of you.",
            ),
            (
                forecast(0, 12_345),
                "less than one investment's worth left; 12,345 people ahead of you.",
            ),
            (
                forecast(1_500, 2),
                "about 1,500 investments' worth left; 2 people ahead of you.",
            ),
        ] {
            assert!(
                sell_out_sentence(&f).contains(words),
                "{}",
                sell_out_sentence(&f)
            );
        }
        // The script has the same words.
        for words in [
            "The round will probably sell out before your turn: ",
            "less than one investment's worth left",
            "about 1 investment's worth left",
            "\" investments' worth left\"",
            "1 person ahead of you",
            "\" people ahead of you\"",
            ". You can keep your place in case it does not, or leave the queue.",
        ] {
            assert!(TEMPLATE.contains(words), "{words}");
        }
    }

    #[test]
    fn no_forecast_means_no_sentence_and_leaving_is_only_for_a_place_held() {
        let open = room(RoomPhase::Open);
        // Waiting without a forecast: no sentence, but the place can be left.
        let s = status(VisitorState::Waiting);
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(r#"id="sell-out" role="status" aria-live="polite" hidden></p>"#));
        assert!(html.contains(r#"<form id="leave" method="post" action="leave">"#));
        // In the pre-queue too.
        let s = status(VisitorState::Prequeue);
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(r#"<form id="leave" method="post" action="leave">"#));
        // Not before joining, nor once admitted (a forecast there is ignored).
        let html = render(&view(Some(&open), None, None));
        assert!(html.contains(r#"<form id="leave" method="post" action="leave" hidden>"#));
        let mut s = status(VisitorState::Admitted);
        s.sell_out = Some(forecast(1, 1));
        let html = render(&view(Some(&open), Some(&s), None));
        assert!(html.contains(r#"<form id="leave" method="post" action="leave" hidden>"#));
        assert!(html.contains(r#"id="sell-out" role="status" aria-live="polite" hidden></p>"#));
    }

    #[test]
    fn values_are_escaped_and_never_read_as_placeholders() {
        let mut open = room(RoomPhase::Open);
        open.name = "<b>{{NOSCRIPT_ACTION}}</b>".into();
        let s = status(VisitorState::Waiting);
        let who = Investor {
            id: "x".into(),
            name: Some("\"><script>alert(1)</script>{{HEADING}}".into()),
            max_investment_pence: None,
        };
        let html = render(&view(Some(&open), Some(&s), Some(&who)));
        assert!(html.contains("&lt;b&gt;{{NOSCRIPT_ACTION}}&lt;/b&gt;"));
        assert!(
            html.contains(
                "Investing as &quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;{{HEADING}}"
            )
        );
        assert!(!html.contains("<script>alert"));
    }
}
