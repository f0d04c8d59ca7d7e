//! Device access rules (`linux.resources.devices`): what they mean, and
//! their two enforcements, one model shared by both.
//!
//! The model is the kernel's v1 `devices` controller: a default (allow or
//! deny every device) and a list of exceptions that get the opposite
//! verdict. Rules apply in order: a rule of type `a` (`a *:* rwm`) resets
//! to a default and drops the exceptions; a rule whose verdict differs from
//! the default adds its access to the exception of the same type and
//! numbers (or adds one); a rule with the default's verdict takes its
//! access off that exception. That is what the kernel does with the same
//! rules written one by one to `devices.allow`/`devices.deny`
//! (`devcgroup_update_access`), and what runc's device emulator computes
//! for cgroup v2 (runc's `libcontainer/cgroups/devices`).
//!
//! - **v1**: [`Rules::v1_writes`] is the reset (`a` to `devices.deny` or
//!   `devices.allow`) and then each exception to the other file, as runc
//!   writes a new cgroup's rules.
//! - **v2**: [`Rules::program`] is a `BPF_PROG_TYPE_CGROUP_DEVICE` program
//!   with the same verdicts, as runc (`devicefilter.go`), crun (`ebpf.c`)
//!   and youki (`libcgroups/src/v2/devices`) generate; the kernel runs it at
//!   every open and mknod of a device node by a process of the cgroup.
//!   Matching follows the kernel's v1 check: with a deny default, an open is
//!   allowed when one exception covers all of its access (read and write
//!   for `O_RDWR`); with an allow default, it is denied when any exception
//!   shares any of its access.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// `BPF_DEVCG_ACC_*`: the access bits of a request and of a rule.
const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;
/// `BPF_DEVCG_DEV_*`: the device type of a request.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// A character or a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Char,
    Block,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Char => 'c',
            Kind::Block => 'b',
        }
    }

    fn bpf(self) -> i32 {
        match self {
            Kind::Char => DEV_CHAR,
            Kind::Block => DEV_BLOCK,
        }
    }
}

/// One exception: a type, a major and minor (`None`: any) and access bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exception {
    kind: Kind,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

impl Exception {
    fn same_device(&self, other: &Exception) -> bool {
        (self.kind, self.major, self.minor) == (other.kind, other.major, other.minor)
    }

    /// The rule as the v1 files spell it: `c 1:3 rwm`, `b *:* m`.
    fn v1(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            access_string(self.access)
        )
    }
}

fn access_string(bits: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The effective rules: a default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

/// A device access a process asks for.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    kind: Kind,
    major: u32,
    minor: u32,
    access: u8,
}

impl Rules {
    /// Applies `rules` in order, from a deny-all start. Refuses a rule of
    /// type `a` other than `a *:* rwm` (the kernel would read any as that),
    /// a type other than `a`, `b`, `c` (or `u`, a character device), a
    /// missing or bad access, and numbers outside 0..2^31.
    pub(crate) fn new(rules: &[LinuxDeviceCgroup]) -> Result<Rules> {
        let mut out = Rules {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for r in rules {
            let bad = |why: &str| Error::invalid(format!("device rule {r}: {why}"));
            let access = parse_access(r.access().as_deref().unwrap_or(""))
                .ok_or_else(|| bad("the access must be a subset of rwm"))?;
            let number = |n: Option<i64>| -> Result<Option<u32>> {
                match n {
                    // runc writes a wildcard as -1.
                    None | Some(-1) => Ok(None),
                    Some(n) => i32::try_from(n)
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Some)
                        .ok_or_else(|| bad("device numbers run from 0 to 2^31-1")),
                }
            };
            let (major, minor) = (number(r.major())?, number(r.minor())?);
            let kind = match r.typ().unwrap_or_default() {
                LinuxDeviceType::A => {
                    if major.is_some() || minor.is_some() || access != ACC_ALL {
                        return Err(bad("a rule of type a must be a *:* rwm"));
                    }
                    out.default_allow = r.allow();
                    out.exceptions.clear();
                    continue;
                }
                LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
                LinuxDeviceType::B => Kind::Block,
                LinuxDeviceType::P => return Err(bad("the type must be a, b or c")),
            };
            let ex = Exception {
                kind,
                major,
                minor,
                access,
            };
            let slot = out.exceptions.iter().position(|e| e.same_device(&ex));
            match (r.allow() != out.default_allow, slot) {
                (true, Some(i)) => out.exceptions[i].access |= access,
                (true, None) => out.exceptions.push(ex),
                (false, Some(i)) => {
                    out.exceptions[i].access &= !access;
                    if out.exceptions[i].access == 0 {
                        out.exceptions.remove(i);
                    }
                }
                (false, None) => {}
            }
        }
        Ok(out)
    }

    /// What a v1 `devices` cgroup is given, in order: `(file, rule)`.
    pub(crate) fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let (reset, exceptions) = if self.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        let mut w = vec![(reset, "a".to_string())];
        w.extend(self.exceptions.iter().map(|e| (exceptions, e.v1())));
        w
    }

    /// Whether `req` is allowed: the verdict the program and the v1
    /// controller give.
    #[cfg(test)]
    pub(crate) fn allows(&self, req: Request) -> bool {
        let hit = self.exceptions.iter().any(|e| {
            e.kind == req.kind
                && e.major.is_none_or(|m| m == req.major)
                && e.minor.is_none_or(|m| m == req.minor)
                && if self.default_allow {
                    req.access & e.access != 0
                } else {
                    req.access & !e.access == 0
                }
        });
        hit != self.default_allow
    }

    /// The `BPF_PROG_TYPE_CGROUP_DEVICE` program: returns 1 (allow) or 0
    /// (deny) for the `struct bpf_cgroup_dev_ctx` in r1.
    ///
    /// ```text
    ///     r2 = type (low 16 bits of ctx->access_type)
    ///     r3 = access (high 16 bits)
    ///     r4 = ctx->major; r5 = ctx->minor
    ///   per exception (a test it does not constrain is left out):
    ///     if r2 != TYPE goto next
    ///     r1 = r3 & ACCESS; if r1 != r3 goto next   (deny default: covers all)
    ///                      if r1 == 0  goto next    (allow default: shares any)
    ///     if r4 != MAJOR goto next; if r5 != MINOR goto next
    ///     r0 = !default; exit
    ///   next: ...
    ///     r0 = default; exit
    /// ```
    pub(crate) fn program(&self) -> Vec<Insn> {
        let mut p = vec![
            Insn::ldx_w(R2, R1, 0),
            Insn::alu32_imm(AND, R2, 0xffff),
            Insn::ldx_w(R3, R1, 0),
            Insn::alu32_imm(RSH, R3, 16),
            Insn::ldx_w(R4, R1, 4),
            Insn::ldx_w(R5, R1, 8),
        ];
        let verdict = |allow: bool| i32::from(allow);
        for e in &self.exceptions {
            let start = p.len();
            p.push(Insn::jmp_imm(JNE, R2, e.kind.bpf()));
            if e.access != ACC_ALL {
                p.push(Insn::mov32_reg(R1, R3));
                p.push(Insn::alu32_imm(AND, R1, i32::from(e.access)));
                p.push(if self.default_allow {
                    Insn::jmp_imm(JEQ, R1, 0)
                } else {
                    Insn::jmp_reg(JNE, R1, R3)
                });
            }
            if let Some(major) = e.major {
                p.push(Insn::jmp_imm(JNE, R4, major as i32));
            }
            if let Some(minor) = e.minor {
                p.push(Insn::jmp_imm(JNE, R5, minor as i32));
            }
            p.push(Insn::mov32_imm(R0, verdict(!self.default_allow)));
            p.push(Insn::exit());
            // Every test of the block jumps to the next block.
            let next = p.len();
            for (i, insn) in p.iter_mut().enumerate().take(next).skip(start) {
                if insn.is_jump() {
                    insn.off = (next - i - 1) as i16;
                }
            }
        }
        p.push(Insn::mov32_imm(R0, verdict(self.default_allow)));
        p.push(Insn::exit());
        p
    }
}

fn parse_access(s: &str) -> Option<u8> {
    crate::device::DeviceAccess::parse(s).map(|a| {
        (if a.read { ACC_READ } else { 0 })
            | (if a.write { ACC_WRITE } else { 0 })
            | (if a.mknod { ACC_MKNOD } else { 0 })
    })
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

// Instruction classes, sizes, modes, operations and sources (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    /// `dst = *(u32 *)(src + off)`
    fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
    }
    /// `(u32) dst op= imm`
    fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
    }
    /// `(u32) dst = imm`
    fn mov32_imm(dst: u8, imm: i32) -> Insn {
        Insn::alu32_imm(MOV, dst, imm)
    }
    /// `(u32) dst = src`
    fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU | MOV | BPF_X, dst, src, 0, 0)
    }
    /// `if dst op imm goto +off` (the offset is set by the caller)
    fn jmp_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_JMP | op | BPF_K, dst, 0, 0, imm)
    }
    /// `if dst op src goto +off`
    fn jmp_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_JMP | op | BPF_X, dst, src, 0, 0)
    }
    fn exit() -> Insn {
        Insn::new(BPF_JMP | EXIT, 0, 0, 0, 0)
    }
    fn is_jump(&self) -> bool {
        self.code & 0x07 == BPF_JMP && self.code & 0xf0 != EXIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{allow_all_rule, default_device_rules, rule};

    fn req(kind: Kind, major: u32, minor: u32, access: u8) -> Request {
        Request {
            kind,
            major,
            minor,
            access,
        }
    }

    /// Runs `prog` on a request as the kernel would: the subset of eBPF the
    /// emitter uses, with r1 pointing at a `bpf_cgroup_dev_ctx`.
    fn run(prog: &[Insn], r: Request) -> bool {
        let ctx: [u32; 3] = [
            (r.kind.bpf() as u32) | (u32::from(r.access) << 16),
            r.major,
            r.minor,
        ];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "the program loops");
            let i = prog
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} out of the program"));
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            let k = i64::from(i.imm) as u64;
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1, "loads only from the context");
                    reg[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                0x54 => reg[dst] = (reg[dst] as u32 & k as u32) as u64,
                0x74 => reg[dst] = ((reg[dst] as u32) >> (k as u32)) as u64,
                0xb4 => reg[dst] = k as u32 as u64,
                0xbc => reg[dst] = reg[src] as u32 as u64,
                0x15 | 0x55 | 0x5d => {
                    let rhs = if i.code == 0x5d { reg[src] } else { k };
                    let eq = reg[dst] == rhs;
                    if eq == (i.code == 0x15) {
                        pc = (pc as i64 + i64::from(i.off)) as usize;
                    }
                }
                0x95 => return reg[0] == 1,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn rules_apply_in_order_like_the_kernel() {
        use LinuxDeviceType::{A, B, C};
        let r = Rules::new(&[
            rule(true, C, Some(1), Some(3), "rwm"),
            rule(false, A, None, None, "rwm"),
            rule(true, C, Some(1), Some(3), "r"),
            rule(true, C, Some(1), Some(3), "w"),
            rule(true, B, Some(7), None, "rm"),
            rule(false, B, Some(7), None, "r"),
            rule(true, C, Some(10), Some(229), "m"),
            rule(false, C, Some(10), Some(229), "m"),
        ])
        .expect("rules");
        assert_eq!(
            r.v1_writes(),
            [
                ("devices.deny", "a".to_string()),
                ("devices.allow", "c 1:3 rw".to_string()),
                ("devices.allow", "b 7:* m".to_string()),
            ]
        );
        let r =
            Rules::new(&[allow_all_rule(), rule(false, C, Some(4), None, "rw")]).expect("rules");
        assert_eq!(
            r.v1_writes(),
            [
                ("devices.allow", "a".to_string()),
                ("devices.deny", "c 4:* rw".to_string()),
            ]
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        use LinuxDeviceType::{A, C, P};
        for (r, why) in [
            (rule(true, A, Some(1), None, "rwm"), "must be a *:* rwm"),
            (rule(true, A, None, None, "r"), "must be a *:* rwm"),
            (rule(true, P, Some(1), Some(1), "rwm"), "must be a, b or c"),
            (rule(true, C, Some(1), Some(1), "rwx"), "subset of rwm"),
            (rule(true, C, Some(1), Some(1), ""), "subset of rwm"),
            (
                rule(true, C, Some(1 << 31), Some(1), "r"),
                "from 0 to 2^31-1",
            ),
            (rule(true, C, Some(1), Some(-2), "r"), "from 0 to 2^31-1"),
        ] {
            let err = Rules::new(&[r]).expect_err(why).to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn the_program_for_a_small_rule_set() {
        use LinuxDeviceType::{A, B, C};
        let r = Rules::new(&[
            rule(false, A, None, None, "rwm"),
            rule(true, C, Some(1), Some(3), "rwm"),
            rule(true, B, None, None, "m"),
        ])
        .expect("rules");
        let p = r.program();
        let raw: Vec<(u8, u8, i16, i32)> =
            p.iter().map(|i| (i.code, i.regs, i.off, i.imm)).collect();
        assert_eq!(
            raw,
            [
                (0x61, 0x12, 0, 0),      // r2 = *(u32 *)(r1 + 0)
                (0x54, 0x02, 0, 0xffff), // w2 &= 0xffff
                (0x61, 0x13, 0, 0),      // r3 = *(u32 *)(r1 + 0)
                (0x74, 0x03, 0, 16),     // w3 >>= 16
                (0x61, 0x14, 4, 0),      // r4 = *(u32 *)(r1 + 4)
                (0x61, 0x15, 8, 0),      // r5 = *(u32 *)(r1 + 8)
                // c 1:3 rwm: no access test
                (0x55, 0x02, 4, 2), // if r2 != 2 (char) goto +4
                (0x55, 0x04, 3, 1), // if r4 != 1 goto +3
                (0x55, 0x05, 2, 3), // if r5 != 3 goto +2
                (0xb4, 0x00, 0, 1), // w0 = 1
                (0x95, 0x00, 0, 0), // exit
                // b *:* m: no number tests
                (0x55, 0x02, 5, 1), // if r2 != 1 (block) goto +5
                (0xbc, 0x31, 0, 0), // w1 = w3
                (0x54, 0x01, 0, 1), // w1 &= 1 (mknod)
                (0x5d, 0x31, 2, 0), // if r1 != r3 goto +2
                (0xb4, 0x00, 0, 1), // w0 = 1
                (0x95, 0x00, 0, 0), // exit
                (0xb4, 0x00, 0, 0), // w0 = 0
                (0x95, 0x00, 0, 0), // exit
            ]
        );
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn the_program_and_the_rules_agree() {
        use LinuxDeviceType::{B, C};
        let rw = ACC_READ | ACC_WRITE;
        let mut sets = vec![
            default_device_rules(),
            vec![allow_all_rule()],
            vec![
                allow_all_rule(),
                rule(false, C, Some(4), None, "w"),
                rule(false, B, None, None, "rw"),
            ],
        ];
        let mut with_fuse = default_device_rules();
        with_fuse.push(rule(true, C, Some(10), Some(229), "r"));
        sets.push(with_fuse);
        let requests: Vec<Request> = [
            (Kind::Char, 1, 3),
            (Kind::Char, 1, 9),
            (Kind::Char, 4, 0),
            (Kind::Char, 5, 1),
            (Kind::Char, 10, 229),
            (Kind::Char, 10, 200),
            (Kind::Char, 136, 7),
            (Kind::Block, 7, 0),
            (Kind::Block, 8, 0),
            (Kind::Block, 1, 3),
        ]
        .iter()
        .flat_map(|&(k, maj, min)| {
            [ACC_READ, ACC_WRITE, rw, ACC_MKNOD].map(|a| req(k, maj, min, a))
        })
        .collect();
        for rules in &sets {
            let r = Rules::new(rules).expect("rules");
            let p = r.program();
            for &q in &requests {
                assert_eq!(run(&p, q), r.allows(q), "{q:?} under {r:?}");
            }
        }
        // What the defaults mean.
        let d = Rules::new(&default_device_rules()).expect("defaults");
        assert!(d.allows(req(Kind::Char, 1, 3, rw)), "/dev/null");
        assert!(d.allows(req(Kind::Char, 136, 7, rw)), "a pty");
        assert!(
            d.allows(req(Kind::Block, 7, 0, ACC_MKNOD)),
            "mknod of a disk"
        );
        assert!(
            !d.allows(req(Kind::Block, 7, 0, ACC_READ)),
            "reading a disk"
        );
        assert!(!d.allows(req(Kind::Char, 4, 0, ACC_READ)), "the console");
        assert!(!d.allows(req(Kind::Char, 10, 229, ACC_READ)), "/dev/fuse");
        // An allow-all default denies an open that shares any denied access.
        let r = Rules::new(&sets[2]).expect("rules");
        assert!(!r.allows(req(Kind::Char, 4, 0, rw)) && r.allows(req(Kind::Char, 4, 0, ACC_READ)));
        // A deny default allows an open only if one rule covers all of it.
        let r = Rules::new(&sets[3]).expect("rules");
        assert!(r.allows(req(Kind::Char, 10, 229, ACC_READ)));
        assert!(!r.allows(req(Kind::Char, 10, 229, rw)));
    }
}
