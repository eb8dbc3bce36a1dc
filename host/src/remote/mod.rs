//! Remote runners: a machine that runs the host calls of the sessions bound to it — their model calls with its
//! keys, their builtin tools in its files — while the server keeps the turn, the log, the streams, the policies
//! and the approvals. The runner (`omnigent runner`) dials out to the server, so it needs no open port.
//!
//! - `wire`: the frames through a runner's tunnel;
//! - `hub`: the runners connected to this server process, and calls to them;
//! - `link`: a turn's model calls and tools through its session's runner (and what happens when it goes away);
//! - `worker`: the runner's side — it makes the calls.

pub mod hub;
pub mod link;
pub mod wire;
pub mod worker;

pub use hub::RunnerHub;
pub use link::RunnerLink;
