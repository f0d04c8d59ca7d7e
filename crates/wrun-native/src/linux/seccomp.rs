//! Compiles the runtime spec's `linux.seccomp` into a classic BPF program
//! and installs it. Rules are tried in order and the first match decides;
//! calls this architecture does not have are skipped, as libseccomp does.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::error::Errno;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const fn offset_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
const fn offset_arg_hi(i: u32) -> u32 {
    20 + 8 * i
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Where a jump goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    L(usize),
}

struct Asm {
    code: Vec<(u16, To, To, u32)>,
    labels: HashMap<usize, usize>,
    next_label: usize,
}

impl Asm {
    fn new() -> Self {
        Asm {
            code: Vec::new(),
            labels: HashMap::new(),
            next_label: 0,
        }
    }
    fn new_label(&mut self) -> usize {
        self.next_label += 1;
        self.next_label
    }
    fn place(&mut self, l: usize) {
        self.labels.insert(l, self.code.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, To::Next, To::Next, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((code, jt, jf, k));
    }
    fn finish(self) -> Result<Vec<libc::sock_filter>, String> {
        let mut out = Vec::with_capacity(self.code.len());
        for (i, (code, jt, jf, k)) in self.code.iter().enumerate() {
            let off = |t: &To| -> Result<u8, String> {
                match t {
                    To::Next => Ok(0),
                    To::L(l) => {
                        let target = *self.labels.get(l).ok_or("unplaced label")?;
                        let d = target.checked_sub(i + 1).ok_or("backward jump")?;
                        u8::try_from(d).map_err(|_| "jump too far".to_string())
                    }
                }
            };
            out.push(libc::sock_filter {
                code: *code,
                jt: off(jt)?,
                jf: off(jf)?,
                k: *k,
            });
        }
        if out.len() > 4096 {
            return Err(format!(
                "the filter has {} instructions (max 4096)",
                out.len()
            ));
        }
        Ok(out)
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, String> {
    match a {
        LinuxSeccompAction::ScmpActNotify => Err("SCMP_ACT_NOTIFY is not supported".into()),
        other => Ok(other.as_u32(errno)),
    }
}

fn syscall_number(name: &str) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        super::syscalls_x86_64::SYSCALLS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, nr)| *nr)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        None
    }
}

/// Compiles `profile` into BPF.
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("seccomp filters are supported on x86_64 only".into());
    }
    let mut asm = Asm::new();
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let kill = LinuxSeccompAction::ScmpActKillProcess.as_u32(None);
    let enosys = LinuxSeccompAction::ScmpActErrno.as_u32(Some(libc::ENOSYS as u32));

    #[cfg(target_arch = "x86_64")]
    {
        let arch_ok = asm.new_label();
        asm.op(BPF_LD_W_ABS, OFFSET_ARCH);
        asm.jump(BPF_JEQ_K, AUDIT_ARCH, To::L(arch_ok), To::Next);
        asm.op(BPF_RET_K, kill);
        asm.place(arch_ok);
        asm.op(BPF_LD_W_ABS, OFFSET_NR);
        // The x32 ABI would otherwise bypass every rule keyed on a number.
        let native = asm.new_label();
        asm.jump(BPF_JGE_K, X32_SYSCALL_BIT, To::Next, To::L(native));
        asm.op(BPF_RET_K, enosys);
        asm.place(native);
    }

    for rule in profile.syscalls().as_deref().unwrap_or_default() {
        let ret = action(rule.action(), rule.errno_ret())?;
        let args = rule.args().as_deref().unwrap_or_default();
        for name in rule.names() {
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            let no_match = asm.new_label();
            asm.jump(BPF_JEQ_K, nr, To::Next, To::L(no_match));
            let fail = asm.new_label();
            for a in args {
                let i = u32::try_from(a.index()).map_err(|_| "bad arg index")?;
                if i > 5 {
                    return Err(format!("{name}: argument index {i} out of range"));
                }
                let v = a.value();
                let (vh, vl) = ((v >> 32) as u32, v as u32);
                let ok = asm.new_label();
                match a.op() {
                    LinuxSeccompOperator::ScmpCmpEq => {
                        asm.op(BPF_LD_W_ABS, offset_arg_hi(i));
                        asm.jump(BPF_JEQ_K, vh, To::Next, To::L(fail));
                        asm.op(BPF_LD_W_ABS, offset_arg_lo(i));
                        asm.jump(BPF_JEQ_K, vl, To::Next, To::L(fail));
                    }
                    LinuxSeccompOperator::ScmpCmpNe => {
                        asm.op(BPF_LD_W_ABS, offset_arg_hi(i));
                        asm.jump(BPF_JEQ_K, vh, To::Next, To::L(ok));
                        asm.op(BPF_LD_W_ABS, offset_arg_lo(i));
                        asm.jump(BPF_JEQ_K, vl, To::L(fail), To::Next);
                    }
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        let e = a.value_two().unwrap_or(0);
                        asm.op(BPF_LD_W_ABS, offset_arg_hi(i));
                        asm.op(BPF_AND_K, vh);
                        asm.jump(BPF_JEQ_K, (e >> 32) as u32, To::Next, To::L(fail));
                        asm.op(BPF_LD_W_ABS, offset_arg_lo(i));
                        asm.op(BPF_AND_K, vl);
                        asm.jump(BPF_JEQ_K, e as u32, To::Next, To::L(fail));
                    }
                    op @ (LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe) => {
                        let lo_op = if op == LinuxSeccompOperator::ScmpCmpGt {
                            BPF_JGT_K
                        } else {
                            BPF_JGE_K
                        };
                        asm.op(BPF_LD_W_ABS, offset_arg_hi(i));
                        asm.jump(BPF_JGT_K, vh, To::L(ok), To::Next);
                        asm.jump(BPF_JEQ_K, vh, To::Next, To::L(fail));
                        asm.op(BPF_LD_W_ABS, offset_arg_lo(i));
                        asm.jump(lo_op, vl, To::Next, To::L(fail));
                    }
                    op @ (LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe) => {
                        // a < v  <=>  !(a >= v);  a <= v  <=>  !(a > v)
                        let lo_op = if op == LinuxSeccompOperator::ScmpCmpLt {
                            BPF_JGE_K
                        } else {
                            BPF_JGT_K
                        };
                        asm.op(BPF_LD_W_ABS, offset_arg_hi(i));
                        asm.jump(BPF_JGE_K, vh, To::Next, To::L(ok));
                        asm.jump(BPF_JEQ_K, vh, To::Next, To::L(fail));
                        asm.op(BPF_LD_W_ABS, offset_arg_lo(i));
                        asm.jump(lo_op, vl, To::L(fail), To::Next);
                    }
                }
                asm.place(ok);
            }
            asm.op(BPF_RET_K, ret);
            asm.place(fail);
            if !args.is_empty() {
                asm.op(BPF_LD_W_ABS, OFFSET_NR);
            }
            asm.place(no_match);
        }
    }
    asm.op(BPF_RET_K, default);
    asm.finish()
}

/// Installs `filter` on the calling thread (which is the only one).
pub(crate) fn install(filter: &[libc::sock_filter]) -> Result<(), Errno> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capabilities;

    #[test]
    fn the_default_profile_compiles() {
        let caps: Capabilities = crate::spec::DEFAULT_CAPABILITIES.into_iter().collect();
        let p = crate::spec::default_seccomp(&caps);
        let prog = compile(&p).expect("compile");
        assert!(prog.len() > 50 && prog.len() < 400, "{}", prog.len());
        assert_eq!(prog.last().map(|i| i.k), Some(0x7fff_0000));
    }
}
