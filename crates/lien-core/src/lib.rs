//! Lien's pure domain: who a device is, what is owed, what the policy allows, and the one
//! function that decides what a financed phone does.
//!
//! Nothing here does IO or reads the clock: every instant is passed in. Domain types carry no
//! serialization; the wire formats live in `lien-proto` and convert explicitly.

mod calendar;
pub mod decision;
pub mod delivery;
pub mod hardship;
pub mod identity;
pub mod ledger;
pub mod money;
pub mod overrides;
pub mod plan;
pub mod policy;
pub mod restructure;

pub use decision::{Decision, DeviceState, PendingNotice, Reason, SimChangeStatus, decide};
pub use delivery::Delivery;
pub use hardship::{
    HardshipError, check_hardship_pause, hardship_days_remaining, hardship_days_used,
};
pub use identity::{DeviceIdentity, IdentityError, Imei, ImeiError, SerialError, SerialNumber};
pub use ledger::{
    InstallmentStanding, Payment, PaymentError, PaymentLog, PaymentRef, Reversal, installments_paid,
};
pub use money::{Currency, Money, MoneyError};
pub use overrides::{Override, OverrideError, OverrideKind};
pub use plan::{Installment, InstallmentPlan, PlanError};
pub use policy::{
    Escalation, LockPolicy, Notice, PayoffRelease, PolicyError, PolicySettings, Preset, QuietHours,
    Restriction, SimChangeRule, UnlockPromise,
};
pub use restructure::{RestructureError, Restructured, restructure};
