//! CPU time and resident memory of a process, from /proc (Linux).

use anyhow::{Context, bail};

/// Clock ticks per second that /proc/PID/stat counts in.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / ticks_per_second())
}

fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces:
    // count fields from after the last ')'. There, field 3 is index 0.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() < 13 {
        bail!("malformed stat: too few fields");
    }
    let utime: u64 = fields[11].parse().context("utime")?;
    let stime: u64 = fields[12].parse().context("stime")?;
    Ok(utime + stime)
}

/// VmRSS of `pid` in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> anyhow::Result<u64> {
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kib = v.trim().trim_end_matches("kB").trim();
            return kib.parse().context("VmRSS value");
        }
    }
    bail!("no VmRSS line (is the process a zombie?)")
}

/// This process's own CPU seconds.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// CPU seconds of an optional process (None when not given or unreadable).
pub fn maybe_cpu(pid: Option<u32>) -> Option<f64> {
    pid.and_then(|p| cpu_seconds(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 50";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 325);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tprotokoll\nVmPeak:\t  100 kB\nVmRSS:\t   51234 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status).unwrap(), 51234);
        assert!(parse_vm_rss("Name: x\n").is_err());
    }

    #[test]
    fn reads_own_process() {
        assert!(cpu_seconds(std::process::id()).is_ok());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
