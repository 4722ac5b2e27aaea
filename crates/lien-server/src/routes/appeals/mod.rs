//! Appeals: a borrower who is locked although they paid (or who owns the phone, or who thinks
//! the lock is wrong) opens one without an account; the financier answers.
//!
//! Opening an appeal is one device change: the appeal row, a dispute freeze (nothing gets
//! worse while the appeal is open) and, for a payment appeal, a provisional unlock that starts
//! at the response deadline, all written with the audit record in one transaction. The pending
//! unlock is an ordinary override, so the decision's own `next_change` schedules the
//! evaluation at the deadline: the scheduler grants it without anyone calling an API, and the
//! phone gets it at its next check-in. An answer ends both overrides (cancelling the unlock if
//! it has not begun); accepting a payment appeal records the payment in the same change.
//!
//! Uploaded documents are kept by the server's attachment store (see [`crate::attachments`]:
//! files under `<data dir>/appeals/`, or the database); the row keeps the key, the recognised
//! type, the size and the SHA-256. Only the device's financier and support can download them.

//! The module is split by reason to change: [`form`] reads and checks what the borrower sends
//! (multipart fields, the uploaded document, the claim), [`rules`] holds the appeal rules as
//! pure functions (proof of holding the phone, one open appeal and the cool-down, the deadline
//! and the provisional unlock, what an answer ends), and [`handlers`] looks things up, calls
//! the rules and writes the answer.

mod form;
mod handlers;
mod rules;

pub use form::{
    AppealForm, CLAIMS, MIN_DOCUMENT_BYTES, Upload, check_form, check_upload, mib, new_reference,
    parse_amount, read_form,
};
pub use handlers::*;
pub use rules::{not_proven, progress, superseded_cutoff_us};
