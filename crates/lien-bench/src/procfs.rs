//! What the benchmarks read of their own process, all from Linux's `/proc/self`, in this one
//! place: the resident set (the idle-connection benchmark's measurement), the soft limit on
//! open files and the descriptors open. Three fields of three files do not justify a crate.

use anyhow::{Context, Result};

/// The resident set of this process, from `/proc/self/status`, in KiB.
pub fn rss_kib() -> Result<u64> {
    let status = read("status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// The soft limit on open files of this process, from `/proc/self/limits` (`None` when
/// unlimited).
pub fn open_files_limit() -> Result<Option<u32>> {
    let limits = read("limits")?;
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .context("no open-files limit in /proc/self/limits")?;
    Ok(soft.parse().ok())
}

/// How many file descriptors this process has open.
pub fn open_files() -> Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .context("reading /proc/self/fd")?
        .count())
}

fn read(file: &str) -> Result<String> {
    std::fs::read_to_string(format!("/proc/self/{file}"))
        .with_context(|| format!("reading /proc/self/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_itself() {
        assert!(rss_kib().unwrap() > 0);
        // Standard input, output and error at least, and the directory being read.
        assert!(open_files().unwrap() >= 3);
        if let Some(limit) = open_files_limit().unwrap() {
            assert!(limit > 0);
        }
    }
}
