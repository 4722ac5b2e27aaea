//! The server's parsers of outside input that the fuzz targets (crates/lien-fuzz) call, where
//! they live in private route modules. A re-export only, so that the fuzzers run exactly the
//! code the handlers run; not an API.

pub use crate::commands::bulk::{bulk_csv_reader, bulk_csv_row};
pub use crate::commands::check_enrollment;
pub use crate::input::parse_imei;
pub use crate::routes::appeals::{AppealForm, Upload, check_form, check_upload, read_form_within};
pub use crate::routes::phone::validate_checkin;
