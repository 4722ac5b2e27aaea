//! Where the agent's randomness comes from: the device key, the unlock challenge and the jitter
//! of check-in times. Injected, so that tests can be deterministic where they need to be.

/// A source of random bytes.
pub trait Entropy: Send {
    /// Fills `buf` with random bytes, or fails if the source has none to give.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// The source had no randomness to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct EntropyError(pub String);

/// The operating system's generator (`getrandom`): the one a real phone uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|e| EntropyError(e.to_string()))
    }
}

/// A predictable stream (SplitMix64) for tests and simulations that must repeat exactly.
/// It is not random: never use it on a phone, where it would make device keys and challenges
/// guessable.
#[derive(Debug, Clone)]
pub struct SeededEntropy(u64);

impl SeededEntropy {
    /// A stream that starts from `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// A uniform number below `bound` (0 when `bound` is 0), or 0 when the source fails: used only
/// for jitter, where a missing random offset is harmless.
pub(crate) fn below(entropy: &mut dyn Entropy, bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    if entropy.fill(&mut bytes).is_err() {
        return 0;
    }
    // The modulo bias is at most bound / 2^64: irrelevant for jitter and 8-digit challenges.
    u64::from_le_bytes(bytes) % bound
}
