//! What the agent asks of the phone: show a screen, apply a set of restrictions.
//!
//! The phone maker implements [`Platform`]. The agent decides; the platform only carries out.

use lien_proto::DeviceRestriction;

use crate::screens::Screen;

/// The phone's enforcement hooks.
pub trait Platform: Send {
    /// Shows `screen` (replacing the previous one). Called whenever what should be on screen
    /// changes, and once at boot.
    fn show(&mut self, screen: &Screen);
    /// Applies `enforcement`, replacing the previous set: anything it does not list is lifted.
    fn apply(&mut self, enforcement: &Enforcement);
}

/// What stays usable whatever is restricted. It is part of every [`Enforcement`] and has no
/// "off" state, so no platform can receive a restriction set without it, and nothing the
/// server sends can take it away: [`DeviceRestriction`] has no variant for calls or the
/// payment app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlwaysAllowed {
    emergency_calls: EmergencyCalls,
    payment_app: Option<String>,
}

/// Emergency calls: always allowed. A unit value, so there is nothing to switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmergencyCalls;

impl AlwaysAllowed {
    /// Emergency calls, and the financier's payment app (e.g. an Android package name) if the
    /// phone maker configured one.
    pub fn new(payment_app: Option<String>) -> AlwaysAllowed {
        AlwaysAllowed {
            emergency_calls: EmergencyCalls,
            payment_app,
        }
    }

    /// Emergency calls are allowed: always.
    pub fn emergency_calls(&self) -> EmergencyCalls {
        self.emergency_calls
    }

    /// The payment app that stays usable over the lock screen.
    pub fn payment_app(&self) -> Option<&str> {
        self.payment_app.as_deref()
    }
}

/// The set of functions to limit, with what is always allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    restrictions: Vec<DeviceRestriction>,
    always_allowed: AlwaysAllowed,
}

/// Every restriction, in a fixed order, so that sets compare and print the same way.
const ORDER: [DeviceRestriction; 5] = [
    DeviceRestriction::LockScreen,
    DeviceRestriction::AppInstalls,
    DeviceRestriction::FactoryReset,
    DeviceRestriction::Debugging,
    DeviceRestriction::SafeMode,
];

impl Enforcement {
    /// Limits `restrictions` (duplicates and order do not matter).
    pub fn new(
        restrictions: impl IntoIterator<Item = DeviceRestriction>,
        always_allowed: AlwaysAllowed,
    ) -> Enforcement {
        let wanted: Vec<DeviceRestriction> = restrictions.into_iter().collect();
        Enforcement {
            restrictions: ORDER.into_iter().filter(|r| wanted.contains(r)).collect(),
            always_allowed,
        }
    }

    /// Limits nothing.
    pub fn none(always_allowed: AlwaysAllowed) -> Enforcement {
        Enforcement::new([], always_allowed)
    }

    /// Whether `restriction` applies.
    pub fn limits(&self, restriction: DeviceRestriction) -> bool {
        self.restrictions.contains(&restriction)
    }

    /// The restrictions that apply, in a fixed order.
    pub fn restrictions(&self) -> &[DeviceRestriction] {
        &self.restrictions
    }

    /// What stays usable regardless.
    pub fn always_allowed(&self) -> &AlwaysAllowed {
        &self.always_allowed
    }
}
