//! The native tier's C ABI as the host sees it (docs/native.md): the `#[repr(C)]` table a library
//! returns from [`ENTRY_SYMBOL`], the borrowed image view, the host's sink callbacks, and the byte
//! encoding of steps and describe answers. `plugins/filters/src/native.rs` is the plugin side of
//! the same layout; `tests/tests/native_tier.rs` runs one against the other.

use crate::types;
use std::ffi::c_void;

/// The one symbol a native library exports: `extern "C" fn() -> *const NativeTable`.
pub(crate) const ENTRY_SYMBOL: &[u8] = b"atelier_native_plugin\0";
/// The ABI major this host speaks; a library with another major is refused.
pub(crate) const ABI_MAJOR: u32 = 1;

pub(crate) const STATUS_OK: i32 = 0;
pub(crate) const STATUS_INVALID_INPUT: i32 = 1;
pub(crate) const STATUS_INTERNAL: i32 = 2;
pub(crate) const STATUS_PANIC: i32 = 3;
pub(crate) const STATUS_BAD_ARGUMENT: i32 = 4;

/// A borrowed RGBA8 image: `height` rows of `stride` bytes.
#[repr(C)]
pub(crate) struct ImageView {
    pub pixels: *const u8,
    pub len: usize,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
}

/// Callbacks through which a library hands results over; the host copies them into its own
/// memory before the callback returns, so nothing allocated by one side is freed by the other.
#[repr(C)]
pub(crate) struct Sink {
    pub ctx: *mut c_void,
    pub image: unsafe extern "C" fn(ctx: *mut c_void, image: *const ImageView) -> i32,
    pub bytes: unsafe extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize),
}

/// The table a library returns (ABI 1.0). `size` says how much of it the library filled in.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct NativeTable {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub size: usize,
    pub contract: *const u8,
    pub contract_len: usize,
    pub ctx: *mut c_void,
    pub describe: unsafe extern "C" fn(ctx: *mut c_void, out: *const Sink) -> i32,
    pub apply: unsafe extern "C" fn(
        ctx: *mut c_void,
        input: *const ImageView,
        steps: *const u8,
        steps_len: usize,
        out: *const Sink,
    ) -> i32,
}

// SAFETY: the table and what it points to live as long as the library, which is never unloaded;
// the ABI requires its entry points to be callable from any thread.
unsafe impl Send for NativeTable {}
unsafe impl Sync for NativeTable {}

/// What one call's sink collected.
#[derive(Default)]
pub(crate) struct Collected {
    pub image: Option<types::Image>,
    pub bytes: Vec<u8>,
    /// Why an image was refused (inconsistent view), for the error message.
    pub refused: Option<String>,
}

impl Collected {
    /// A sink writing into `self`, valid while `self` is borrowed.
    pub fn sink(&mut self) -> Sink {
        Sink { ctx: self as *mut Collected as *mut c_void, image: take_image, bytes: take_bytes }
    }
}

unsafe extern "C" fn take_image(ctx: *mut c_void, view: *const ImageView) -> i32 {
    // A panic must not unwind into the library (it would abort); report a refusal instead.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `Collected` of the current call (see `sink`); the view is lent
        // by the library for the duration of this callback.
        let kept = unsafe { &mut *(ctx as *mut Collected) };
        let Some(v) = (unsafe { view.as_ref() }) else {
            kept.refused = Some("a null image".into());
            return 1;
        };
        match unsafe { packed(v) } {
            Ok(image) => {
                kept.image = Some(image);
                0
            }
            Err(why) => {
                kept.refused = Some(why);
                1
            }
        }
    }))
    .unwrap_or(1)
}

unsafe extern "C" fn take_bytes(ctx: *mut c_void, ptr: *const u8, len: usize) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in `take_image`; `ptr` is readable for `len` bytes during the callback.
        let kept = unsafe { &mut *(ctx as *mut Collected) };
        if len > 0 && !ptr.is_null() {
            kept.bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, len) });
        }
    }));
}

/// Copy a view into a packed host image, checking its geometry first.
///
/// SAFETY: `v.pixels` is readable for `v.len` bytes.
unsafe fn packed(v: &ImageView) -> Result<types::Image, String> {
    let row = (v.width as usize).checked_mul(4).ok_or("width overflows")?;
    let (h, stride) = (v.height as usize, v.stride as usize);
    if stride < row {
        return Err(format!("stride {stride} is less than width {} x 4", v.width));
    }
    let need = if h == 0 || row == 0 { 0 } else { stride.checked_mul(h - 1).and_then(|n| n.checked_add(row)).ok_or("size overflows")? };
    if v.len < need || (need > 0 && v.pixels.is_null()) {
        return Err(format!("a {}x{} image with stride {stride} needs {need} bytes, the library gave {}", v.width, v.height, v.len));
    }
    let src = if need == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(v.pixels, need) } };
    let pixels = if stride == row {
        src.to_vec()
    } else {
        let mut p = Vec::with_capacity(row * h);
        for y in 0..h {
            p.extend_from_slice(&src[y * stride..y * stride + row]);
        }
        p
    };
    Ok(types::Image { width: v.width, height: v.height, pixels })
}

// Encoding (docs/native.md): little-endian; strings and byte lists are a u32 length then the
// bytes; an option is a u8 (0/1) then the value; f64 travels as its IEEE bits, exactly.

const V_BOOLEAN: u8 = 0;
const V_INTEGER: u8 = 1;
const V_NUMBER: u8 = 2;
const V_TEXT: u8 = 3;
const V_MEDIA: u8 = 4;

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}
fn put_value(out: &mut Vec<u8>, v: &types::Value) {
    match v {
        types::Value::Boolean(b) => out.extend_from_slice(&[V_BOOLEAN, *b as u8]),
        types::Value::Integer(i) => {
            out.push(V_INTEGER);
            out.extend_from_slice(&i.to_le_bytes());
        }
        types::Value::Number(f) => {
            out.push(V_NUMBER);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        types::Value::Text(t) => {
            out.push(V_TEXT);
            put_bytes(out, t.as_bytes());
        }
        types::Value::Media(m) => {
            out.push(V_MEDIA);
            put_bytes(out, m.mime.as_bytes());
            put_bytes(out, &m.bytes);
        }
    }
}

/// Steps as a library reads them.
pub(crate) fn encode_steps(steps: &[types::Step]) -> Vec<u8> {
    let mut out = vec![];
    put_u32(&mut out, steps.len() as u32);
    for s in steps {
        put_bytes(&mut out, s.name.as_bytes());
        put_u32(&mut out, s.params.len() as u32);
        for p in &s.params {
            put_bytes(&mut out, p.name.as_bytes());
            put_value(&mut out, &p.value);
        }
    }
    out
}

/// A bounds-checked reader over a library's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated: wanted {n} more bytes, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }
    fn f64_opt(&mut self) -> Result<Option<f64>, String> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(f64::from_bits(self.u64()?)),
        })
    }
    fn value(&mut self) -> Result<types::Value, String> {
        Ok(match self.u8()? {
            V_BOOLEAN => types::Value::Boolean(self.u8()? != 0),
            V_INTEGER => types::Value::Integer(self.u64()? as i64),
            V_NUMBER => types::Value::Number(f64::from_bits(self.u64()?)),
            V_TEXT => types::Value::Text(self.string()?),
            V_MEDIA => types::Value::Media(types::Media { mime: self.string()?, bytes: self.bytes()?.to_vec() }),
            other => return Err(format!("unknown value tag {other}")),
        })
    }
    /// A count, bounded by what the remaining bytes could hold (a corrupt count cannot make the
    /// host reserve gigabytes).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(format!("a count of {n} with {} bytes left", self.0.len()));
        }
        Ok(n)
    }
}

/// A library's `describe` answer.
pub(crate) fn decode_infos(bytes: &[u8]) -> Result<Vec<types::FilterInfo>, String> {
    let mut r = Reader(bytes);
    let mut infos = vec![];
    for _ in 0..r.count()? {
        let name = r.string()?;
        let description = r.string()?;
        let mut params = vec![];
        for _ in 0..r.count()? {
            let name = r.string()?;
            let description = r.string()?;
            let kind = match r.u8()? {
                0 => types::ParamKind::Boolean,
                1 => types::ParamKind::Integer,
                2 => types::ParamKind::Number,
                3 => types::ParamKind::Text,
                4 => types::ParamKind::Choice,
                5 => types::ParamKind::Media,
                other => return Err(format!("parameter `{name}`: unknown kind {other}")),
            };
            let default = match r.u8()? {
                0 => None,
                _ => Some(r.value()?),
            };
            let (min, max) = (r.f64_opt()?, r.f64_opt()?);
            let mut choices = vec![];
            for _ in 0..r.count()? {
                choices.push(r.string()?);
            }
            let required = r.u8()? != 0;
            params.push(types::ParamSpec::from_flat(name, description, kind, default, min, max, choices, required)?);
        }
        infos.push(types::FilterInfo { name, description, params });
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last filter", r.0.len()));
    }
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_describe_answer_is_an_error_not_a_huge_allocation() {
        assert!(decode_infos(&[0xff, 0xff, 0xff, 0x7f]).unwrap_err().contains("count"));
        assert!(decode_infos(&[1, 0, 0, 0, 9, 0, 0, 0, b'x']).unwrap_err().contains("truncated"));
        assert_eq!(decode_infos(&[0, 0, 0, 0]).unwrap().len(), 0);
    }

    #[test]
    fn a_view_is_packed_and_checked() {
        let rows = [1u8, 2, 3, 4, 9, 9, 5, 6, 7, 8, 9, 9];
        let v = ImageView { pixels: rows.as_ptr(), len: rows.len(), width: 1, height: 2, stride: 6 };
        let img = unsafe { packed(&v) }.unwrap();
        assert_eq!(img.pixels, [1, 2, 3, 4, 5, 6, 7, 8]);
        let short = ImageView { len: 7, ..v };
        assert!(unsafe { packed(&short) }.unwrap_err().contains("needs 10 bytes"));
    }
}
