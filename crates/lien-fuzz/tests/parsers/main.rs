//! The parsers of outside input on known inputs: every fuzz corpus replayed through the
//! functions the fuzz targets call, and the bulk CSV reader's answers row by row.
//!
//! One test binary, with a module per concern.

mod bulk_csv;
mod corpus_replay;
