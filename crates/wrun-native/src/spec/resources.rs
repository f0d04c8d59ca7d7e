//! Resource limits, validated as docker validates them.

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use wrun_core::Limits;

use crate::error::{Error, Result};

/// The spec's `linux.resources` for `limits`, refused as docker refuses
/// them: a memory limit under 6 MB, a swap limit without or below the
/// memory limit, a pids limit of 0, cpus outside 0.01.., cpu shares outside
/// 2..=262144. Without a swap limit, swap is twice the memory limit.
pub(super) fn resources(limits: &Limits) -> Result<LinuxResources> {
    let oci = |e: oci_spec::OciSpecError| Error::invalid(e.to_string());
    let l = limits;
    let mut res = LinuxResourcesBuilder::default();
    if l.memory.is_some() || l.memory_swap.is_some() {
        let mut m = LinuxMemoryBuilder::default();
        let limit = match l.memory {
            Some(b) => {
                Some(i64::try_from(b).map_err(|_| Error::invalid("memory limit too large"))?)
            }
            None => None,
        };
        if let Some(limit) = limit {
            if limit < 6 * 1024 * 1024 {
                return Err(Error::invalid("minimum memory limit allowed is 6MB"));
            }
            m = m.limit(limit);
        }
        match (limit, l.memory_swap) {
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "a memory+swap limit needs a memory limit (--memory)",
                ));
            }
            (Some(limit), Some(swap)) if swap != -1 && swap < limit => {
                return Err(Error::invalid(
                    "the memory+swap limit must be at least the memory limit",
                ));
            }
            (_, Some(swap)) => m = m.swap(swap),
            (Some(limit), None) => m = m.swap(limit.saturating_mul(2)),
            (None, None) => {}
        }
        res = res.memory(m.build().map_err(oci)?);
    }
    if let Some(p) = l.pids {
        if p == 0 || p < -1 {
            return Err(Error::invalid(format!("invalid pids limit {p}")));
        }
        res = res.pids(LinuxPidsBuilder::default().limit(p).build().map_err(oci)?);
    }
    if l.cpus.is_some() || l.cpu_shares.is_some() {
        let mut c = LinuxCpuBuilder::default();
        if let Some(cpus) = l.cpus {
            if !(cpus > 0.0 && cpus.is_finite()) {
                return Err(Error::invalid(format!("invalid cpus {cpus}")));
            }
            let period: u64 = 100_000;
            let quota = (cpus * period as f64).round() as i64;
            if quota < 1000 {
                return Err(Error::invalid("cpus must be at least 0.01"));
            }
            c = c.period(period).quota(quota);
        }
        if let Some(shares) = l.cpu_shares {
            if !(2..=262_144).contains(&shares) {
                return Err(Error::invalid(format!(
                    "cpu shares {shares} out of range 2..=262144"
                )));
            }
            c = c.shares(shares);
        }
        res = res.cpu(c.build().map_err(oci)?);
    }
    res.build().map_err(oci)
}
