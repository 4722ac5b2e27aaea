//! The server from outside: each test spawns a real server on a free port with a fresh
//! database and a clock it moves, then drives it over HTTP as financiers, phones, a browser and
//! attackers would.
//!
//! One test binary, with a module per concern, rather than a binary per file: `common` and the
//! server are compiled and linked once, and a helper any module uses is not dead code.

// First, so that its `on_both_backends!` is in scope in the modules below.
#[macro_use]
mod common;

mod appeals;
mod attacks;
mod browser;
mod console;
mod emergency;
mod hardship;
mod isolation;
mod malformed;
mod management;
mod money_in;
mod mpesa;
mod notices;
mod pages;
mod payoff;
mod phone;
mod push;
mod rate_limits;
mod sim_change;
mod story;
mod unlock_promise;
mod webhooks;
