//! `lien bench`: runs the `lien-bench` binary, Lien's load generator, with the same arguments
//! (see `beside` for why it is a binary of its own and how it is found).

use crate::beside::Companion;

/// The load generator.
pub const LIEN_BENCH: Companion = Companion {
    program: "lien-bench",
    command: "bench",
    what: "the load generator",
};
