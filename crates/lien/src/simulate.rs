//! `lien simulate`: runs the `lien-sim` binary, the deterministic portfolio simulation, with the
//! same arguments (see `beside` for why it is a binary of its own and how it is found).

use crate::beside::Companion;

/// The portfolio simulation.
pub const LIEN_SIM: Companion = Companion {
    program: "lien-sim",
    command: "simulate",
    what: "the portfolio simulation",
};
