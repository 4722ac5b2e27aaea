//! A platform that remembers what the agent asked of it.

use crate::platform::{Enforcement, Platform};
use crate::screens::Screen;

/// Records the screen and the restrictions the agent last asked for, and how often it asked.
#[derive(Debug, Clone, Default)]
pub struct RecordingPlatform {
    screen: Option<Screen>,
    enforcement: Option<Enforcement>,
    /// How many times a screen was shown.
    pub screens_shown: u64,
}

impl RecordingPlatform {
    /// A platform with nothing shown yet.
    pub fn new() -> RecordingPlatform {
        RecordingPlatform::default()
    }

    /// The screen on display.
    pub fn screen(&self) -> Option<&Screen> {
        self.screen.as_ref()
    }

    /// The restrictions in force.
    pub fn enforcement(&self) -> Option<&Enforcement> {
        self.enforcement.as_ref()
    }
}

impl Platform for RecordingPlatform {
    fn show(&mut self, screen: &Screen) {
        self.screen = Some(screen.clone());
        self.screens_shown += 1;
    }

    fn apply(&mut self, enforcement: &Enforcement) {
        self.enforcement = Some(enforcement.clone());
    }
}
