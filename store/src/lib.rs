//! crowdgate-store: the one owner of a round's Redis layout.
//!
//! Every key name, every field name, every decoder of a stored hash and
//! every Lua script lives here, each script behind a typed wrapper that
//! returns a verdict enum. core, settlement, the CLI, the test helpers and
//! the benchmarks touch Redis only through this crate, so the layout can be
//! read — and changed — in one place.
//!
//! Scripts answer with verdict *names* (`'round_full'`) and numbers, never
//! HTTP statuses; the wrappers parse them into enums, and a name a wrapper
//! does not know is an error ([`StoreError::UnknownVerdict`]), never a
//! default. What a verdict means to a client (status code, message) is
//! core's business.
//!
//! # Layout
//! - [`keys`]: [`RoundKeys`], every key of a round under one hash tag.
//! - [`layout`]: every field name, phase and status word, spelled once and
//!   expanded into Rust constants and into the scripts' Lua tables.
//! - [`record`]: the one decoder of each hash: [`RoundRecord`],
//!   [`LedgerRecord`], [`InvestmentRecord`].
//! - [`scripts`]: the Lua sources (`src/lua/*.lua`), each assembled at build
//!   time as names + `prelude.lua` (clock, phase machine, pre-queue seal) +
//!   the script, and [`ScriptCall`], the one way a script is invoked.
//! - [`rounds`]: the deployment's rounds: the live and archived sets,
//!   creating a round ([`Created`]) and archiving one ([`Archived`]).
//! - [`round`]: [`RoundStore`], core's handle: seeding, the room state,
//!   investments, the durability check. Its script calls, one module each:
//!   [`join`] ([`Placement`]), [`admission`] ([`Advance`]), [`claim`]
//!   ([`ClaimVerdict`]), [`leave`] ([`LeaveVerdict`]), [`invest`]
//!   ([`InvestVerdict`]), [`change`] ([`ChangeVerdict`]); and reads:
//!   [`audit`], [`figures`].
//! - [`draw`]: the pre-queue draw as stored: the number an entry drew
//!   ([`PrequeueNumber`]), and the numbers of entries that left before it
//!   (computed with `crowdgate_protocol::draw`, which Lua cannot run); the
//!   draw's secret is written when the round is seeded.
//! - [`stream`]: [`Settlement`], the settlement side: the stream and its
//!   consumer group, dead letters, backlog; with [`settle`] ([`Posting`]),
//!   [`consumers`] (forgetting idle consumers) and [`snapshot`] (what
//!   reconciliation reads).
//! - [`accounts`]: investors' accounts, the deployment's and not a round's
//!   (opening them, and their balances and totals in one snapshot).
//! - [`inspect`]: direct reads and writes for tests and benchmarks.
//! - [`topology`]: where the round's Redis is (one URL, or a primary under
//!   Sentinel) and how many replicas acknowledge a write ([`RedisConfig`]).
//! - [`connection`]: [`Redis`], the connection to the primary that follows
//!   a failover, and `confirm`, what makes an acknowledged write replicated.
//! - [`safety`]: is this Redis safe to acknowledge writes on (durable,
//!   and refusing writes while cut off from its replicas).
//! - [`unreachable`]: why the primary cannot be reached, in words, and
//!   waiting until it can ([`Redis::connect_waiting`]): processes wait out
//!   a failover instead of exiting.
//! - [`error`]: every failure of a store call, as one type ([`StoreError`]).
//!
//! # Invariants the scripts keep
//! - `raised ≤ cap` and `raised = accepted − released` (invest, settle,
//!   change).
//! - Phases move only along the machine in `prelude.lua`; a closed round
//!   stays closed.
//! - The pre-queue is sealed once, before any number is issued: its P
//!   entries own 1..P as the draw permutes them, later joiners P+1.. in
//!   arrival order; nobody is admitted while an entry that left before the
//!   draw has no number in `left`.
//! - The admission cursor only moves forward, never past `issued`, at most
//!   one batch per interval; active investors never exceed `max_active`
//!   because of an advance or a claim. Numbers whose tickets left the
//!   queue are passed over without a reservation.
//! - A ticket leaves at most once, never after claiming its pass, and is
//!   spent once it has.
//! - An investment id is recorded and published once; settled once (status
//!   is the guard, the ack in the same step); debits = credits.
//!
//! Every script takes `now` as an argument, so its tests run on a fixed
//! clock (`tests/scripts/`).

#[macro_use]
pub mod layout;

pub mod accounts;
pub mod admission;
pub mod audit;
pub mod change;
pub mod claim;
pub mod clock;
pub mod connection;
pub mod consumers;
pub mod draw;
pub mod error;
pub mod figures;
pub mod inspect;
pub mod invest;
pub mod join;
pub mod keys;
pub mod leave;
pub mod record;
pub mod round;
pub mod rounds;
pub mod safety;
pub mod scripts;
pub mod settle;
pub mod snapshot;
pub mod stream;
pub mod topology;
pub mod unreachable;

/// A Redis connection the store can use: [`Redis`] (core, the worker, the
/// CLI) or a `MultiplexedConnection` (tests).
pub trait Connection: redis::aio::ConnectionLike + Send + Sync {}
impl<T: redis::aio::ConnectionLike + Send + Sync> Connection for T {}

pub use accounts::{AccountsSnapshot, OpenAccounts, accounts_snapshot, open_accounts};
pub use admission::Advance;
pub use audit::{AuditEntry, FieldChange};
pub use change::{Change, ChangeVerdict};
pub use claim::ClaimVerdict;
pub use connection::{Pinned, Redis, ReplicationStatus};
pub use consumers::Forget;
pub use draw::PrequeueNumber;
pub use error::{StoreError, StoreResult};
pub use figures::Figures;
pub use invest::{InvestVerdict, NewInvestment};
pub use join::{Joined, Joiner, Placement};
pub use keys::{RoundKeys, SETTLEMENT_GROUP, check_round_id};
pub use leave::LeaveVerdict;
pub use record::SealedDraw;
pub use record::{InvestmentRecord, InvestmentSummary, LedgerRecord, RoundRecord};
pub use round::{RoundSettings, RoundStore};
pub use rounds::{Archived, Created};
pub use safety::{durability_problem, primary_problems, replication_problem};
pub use scripts::ScriptCall;
pub use settle::Posting;
pub use snapshot::Counters;
pub use stream::{Backlog, Entry, Settlement};
pub use topology::{RedisConfig, Replication, Topology};
pub use unreachable::why_unreachable;
