//! A classic BPF interpreter, to run the capture's kernel filter over
//! captured frames in tests exactly as the kernel would (loads past the
//! end of the packet reject it).

use vigie_core::sensor::kernel_filter::Instruction;

/// The number of bytes the program keeps of `packet` (0: rejected), or
/// `None` for an instruction this interpreter does not know.
pub fn run(program: &[Instruction], packet: &[u8]) -> Option<u32> {
    let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    let load = |at: u32, size: usize| -> Option<u32> {
        let at = usize::try_from(at).ok()?;
        let bytes = packet.get(at..at.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |v, b| v << 8 | u32::from(*b)))
    };
    for _ in 0..4096 {
        let &(code, jt, jf, k) = program.get(pc)?;
        pc += 1;
        let jump = |taken: bool| usize::from(if taken { jt } else { jf });
        match code {
            0x28 => match load(k, 2) {
                Some(v) => a = v,
                None => return Some(0),
            },
            0x30 => match load(k, 1) {
                Some(v) => a = v,
                None => return Some(0),
            },
            0x48 => match load(x.wrapping_add(k), 2) {
                Some(v) => a = v,
                None => return Some(0),
            },
            0x50 => match load(x.wrapping_add(k), 1) {
                Some(v) => a = v,
                None => return Some(0),
            },
            0xb1 => match load(k, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return Some(0),
            },
            0x02 => *mem.get_mut(usize::try_from(k).ok()?)? = a,
            0x61 => x = *mem.get(usize::try_from(k).ok()?)?,
            0x07 => x = a,
            0x87 => a = x,
            0x0c => a = a.wrapping_add(x),
            0x1c => a = a.wrapping_sub(x),
            0x54 => a &= k,
            0x74 => a = a.checked_shr(k)?,
            0x15 => pc += jump(a == k),
            0x25 => pc += jump(a > k),
            0x2d => pc += jump(a > x),
            0x45 => pc += jump(a & k != 0),
            0x06 => return Some(k),
            _ => return None,
        }
    }
    None
}
