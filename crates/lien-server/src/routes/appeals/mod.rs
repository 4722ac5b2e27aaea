//! The appeal routes: a borrower who is locked although they paid (or who owns the phone, or
//! who thinks the lock is wrong) opens an appeal without an account and follows it by its
//! reference; the financier lists, reads and answers appeals and downloads their documents.
//!
//! Split by reason to change: [`form`] reads and checks what the borrower sends (the bounded
//! multipart reader, the uploaded document, the proof fields and the claim; the fuzz targets
//! call these), and [`handlers`] extracts, calls the appeal commands
//! ([`crate::commands::appeals`], where opening and answering and their rules live) or reads,
//! and serializes. Documents are kept by the attachment store ([`crate::attachments`]).

mod form;
mod handlers;

pub use form::{
    AppealForm, MIN_DOCUMENT_BYTES, Upload, check_form, check_upload, checked_request, mib,
    parse_amount, read_form, read_form_within,
};
pub use handlers::*;
