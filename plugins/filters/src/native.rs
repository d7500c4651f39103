//! The native tier's C ABI (docs/native.md): on the host target this crate's cdylib exports
//! [`atelier_native_plugin`], which returns a `#[repr(C)]` table of entry points over the same
//! [`run_chain`](crate::run_chain) and [`filter_infos`](crate::params::filter_infos) the wasm
//! component runs, so both tiers compute the same pixels from one source.
//!
//! Memory never changes hands: the input image and the encoded steps are borrowed from the host
//! for the call, and every result (image, describe bytes, error text) is handed to a host
//! callback that copies it into host-allocated memory before the call returns. Every entry point
//! catches panics (a panic unwinding out of `extern "C"` aborts the host since Rust 1.81).

use crate::params;
use atelier_sdk::{Error, FilterInfo, Image, Media, Param, ParamSpec, ParamType, Step, Value};
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Incompatible changes bump the major; the host refuses a library whose major differs.
pub const ABI_MAJOR: u32 = 1;
/// Compatible additions (fields appended to [`NativeTable`]) bump the minor.
pub const ABI_MINOR: u32 = 0;

/// The call succeeded; the result went to the sink.
pub const STATUS_OK: i32 = 0;
/// The request cannot succeed as given (WIT `error::invalid-input`); the message went to the sink.
pub const STATUS_INVALID_INPUT: i32 = 1;
/// A fault inside the plugin (WIT `error::internal`); the message went to the sink.
pub const STATUS_INTERNAL: i32 = 2;
/// The plugin panicked; the panic message went to the sink.
pub const STATUS_PANIC: i32 = 3;
/// The host passed something malformed (a null pointer, a short buffer, bad step encoding).
pub const STATUS_BAD_ARGUMENT: i32 = 4;

/// A borrowed RGBA8 image: `height` rows of `stride` bytes, the first `width * 4` of each used.
#[repr(C)]
pub struct ImageView {
    /// First byte of the first row.
    pub pixels: *const u8,
    /// Bytes readable from `pixels` (at least `stride * (height - 1) + width * 4`).
    pub len: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
}

/// Host callbacks that copy a result into host memory during the call.
#[repr(C)]
pub struct Sink {
    /// The host's context for this call, passed back to the callbacks.
    pub ctx: *mut c_void,
    /// Take the result image (copied before returning); returns 0, or nonzero when the host
    /// refuses it (too large), which the plugin reports as an internal error.
    pub image: unsafe extern "C" fn(ctx: *mut c_void, image: *const ImageView) -> i32,
    /// Take bytes: the encoded describe answer or an error message (UTF-8).
    pub bytes: unsafe extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize),
}

/// What [`atelier_native_plugin`] returns: the ABI version, the table's own size and the entry
/// points. It lives as long as the library, which the host never unloads.
#[repr(C)]
pub struct NativeTable {
    /// [`ABI_MAJOR`].
    pub abi_major: u32,
    /// [`ABI_MINOR`].
    pub abi_minor: u32,
    /// `size_of::<NativeTable>()` as the library was built: fields appended by later minors are
    /// present only when this says so.
    pub size: usize,
    /// The WIT contract whose `describe`/`apply` semantics the entry points follow (UTF-8).
    pub contract: *const u8,
    /// Length of `contract`.
    pub contract_len: usize,
    /// Opaque plugin state handed back to every entry point.
    pub ctx: *mut c_void,
    /// `describe`: the filters, encoded (docs/native.md), written to `out.bytes`.
    pub describe: unsafe extern "C" fn(ctx: *mut c_void, out: *const Sink) -> i32,
    /// `apply`: run the encoded `steps` on `input`; the result goes to `out.image`, an error's
    /// message to `out.bytes`.
    pub apply: unsafe extern "C" fn(
        ctx: *mut c_void,
        input: *const ImageView,
        steps: *const u8,
        steps_len: usize,
        out: *const Sink,
    ) -> i32,
}

// SAFETY: the table is immutable and its pointers are to static data; `ctx` is unused (null).
unsafe impl Sync for NativeTable {}

const CONTRACT: &str = "0.1.0";

static TABLE: NativeTable = NativeTable {
    abi_major: ABI_MAJOR,
    abi_minor: ABI_MINOR,
    size: size_of::<NativeTable>(),
    contract: CONTRACT.as_ptr(),
    contract_len: CONTRACT.len(),
    ctx: std::ptr::null_mut(),
    describe,
    apply,
};

/// The one exported symbol: the table of entry points. Nothing runs before the host calls it
/// (no constructors), and it cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn atelier_native_plugin() -> *const NativeTable {
    &TABLE
}

/// Hand `text` to the host's byte sink.
///
/// SAFETY: `out` is the valid sink of the current call.
unsafe fn say(out: &Sink, text: &str) {
    unsafe { (out.bytes)(out.ctx, text.as_ptr(), text.len()) }
}

/// A panic's message, for the host.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("the filters library panicked: {msg}")
}

unsafe extern "C" fn describe(_ctx: *mut c_void, out: *const Sink) -> i32 {
    // SAFETY: the host passes a sink valid for the call, or null (refused below).
    let Some(out) = (unsafe { out.as_ref() }) else { return STATUS_BAD_ARGUMENT };
    match catch_unwind(|| encode_infos(&params::filter_infos())) {
        Ok(bytes) => {
            unsafe { (out.bytes)(out.ctx, bytes.as_ptr(), bytes.len()) };
            STATUS_OK
        }
        Err(p) => {
            unsafe { say(out, &panic_text(&*p)) };
            STATUS_PANIC
        }
    }
}

unsafe extern "C" fn apply(
    _ctx: *mut c_void,
    input: *const ImageView,
    steps: *const u8,
    steps_len: usize,
    out: *const Sink,
) -> i32 {
    // SAFETY: the host passes a sink valid for the call, or null (refused below).
    let Some(out) = (unsafe { out.as_ref() }) else { return STATUS_BAD_ARGUMENT };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host lends the image and the steps for the duration of the call.
        let Some(view) = (unsafe { input.as_ref() }) else {
            return (STATUS_BAD_ARGUMENT, Some("no input image".to_string()), None);
        };
        let bytes = if steps_len == 0 {
            &[][..]
        } else if steps.is_null() {
            return (STATUS_BAD_ARGUMENT, Some("steps: null pointer".into()), None);
        } else {
            unsafe { std::slice::from_raw_parts(steps, steps_len) }
        };
        let steps = match decode_steps(bytes) {
            Ok(s) => s,
            Err(m) => return (STATUS_BAD_ARGUMENT, Some(format!("steps: {m}")), None),
        };
        // Packed rows are read where they lie (no full-size copy before a leading resize).
        let row = view.width as usize * 4;
        let packed = view.stride as usize == row && !view.pixels.is_null() && view.len >= row * view.height as usize;
        let result = if packed {
            let pixels = unsafe { std::slice::from_raw_parts(view.pixels, row * view.height as usize) };
            crate::run_chain_borrowed(view.width, view.height, pixels, &steps)
        } else {
            match unsafe { owned_image(view) } {
                Ok(image) => crate::run_chain(image, &steps),
                Err(m) => return (STATUS_BAD_ARGUMENT, Some(m), None),
            }
        };
        match result {
            Ok(image) => (STATUS_OK, None, Some(image)),
            Err(Error::InvalidInput(m)) => (STATUS_INVALID_INPUT, Some(m), None),
            Err(Error::Internal(m)) => (STATUS_INTERNAL, Some(m), None),
            Err(other) => (STATUS_INTERNAL, Some(format!("{other:?}")), None),
        }
    }));
    match result {
        Ok((STATUS_OK, _, Some(image))) => {
            let view = ImageView {
                pixels: image.pixels.as_ptr(),
                len: image.pixels.len(),
                width: image.width,
                height: image.height,
                stride: image.width * 4,
            };
            // SAFETY: `view` borrows `image`, alive until the host's copy returns.
            if unsafe { (out.image)(out.ctx, &view) } != 0 {
                unsafe { say(out, "the host refused the result image") };
                return STATUS_INTERNAL;
            }
            STATUS_OK
        }
        Ok((status, message, _)) => {
            unsafe { say(out, message.as_deref().unwrap_or("failed")) };
            if status == STATUS_OK { STATUS_INTERNAL } else { status }
        }
        Err(p) => {
            unsafe { say(out, &panic_text(&*p)) };
            STATUS_PANIC
        }
    }
}

/// Copy a borrowed view into an owned, packed image (the chain works in place on its own buffer).
///
/// SAFETY: `v.pixels` is readable for `v.len` bytes.
unsafe fn owned_image(v: &ImageView) -> Result<Image, String> {
    let row = v.width as usize * 4;
    let (h, stride) = (v.height as usize, v.stride as usize);
    if stride < row {
        return Err(format!("stride {stride} is less than width {} x 4", v.width));
    }
    let need = if h == 0 { 0 } else { stride * (h - 1) + row };
    if v.len < need || (need > 0 && v.pixels.is_null()) {
        return Err(format!("{}x{} image with stride {stride} needs {need} bytes, got {}", v.width, v.height, v.len));
    }
    if need == 0 {
        return Ok(Image { width: v.width, height: v.height, pixels: vec![] });
    }
    let src = unsafe { std::slice::from_raw_parts(v.pixels, need) };
    let pixels = if stride == row {
        src.to_vec()
    } else {
        let mut p = Vec::with_capacity(row * h);
        for y in 0..h {
            p.extend_from_slice(&src[y * stride..y * stride + row]);
        }
        p
    };
    Ok(Image { width: v.width, height: v.height, pixels })
}

// The encoding of steps and describe answers (docs/native.md): little-endian; a string or byte
// list is a u32 length and its bytes; an option is a u8 (0 none, 1 some) and the value; f64 is
// its IEEE bits (exact, so both tiers see the same parameters).

/// Value tags.
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
fn put_f64_opt(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        None => out.push(0),
        Some(f) => {
            out.push(1);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
    }
}
fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Boolean(b) => out.extend_from_slice(&[V_BOOLEAN, *b as u8]),
        Value::Integer(i) => {
            out.push(V_INTEGER);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Number(f) => {
            out.push(V_NUMBER);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Text(t) => {
            out.push(V_TEXT);
            put_bytes(out, t.as_bytes());
        }
        Value::Media(m) => {
            out.push(V_MEDIA);
            put_bytes(out, m.mime.as_bytes());
            put_bytes(out, &m.bytes);
        }
    }
}

/// Encode `describe`'s answer.
pub fn encode_infos(infos: &[FilterInfo]) -> Vec<u8> {
    let mut out = vec![];
    put_u32(&mut out, infos.len() as u32);
    for f in infos {
        put_bytes(&mut out, f.name.as_bytes());
        put_bytes(&mut out, f.description.as_bytes());
        put_u32(&mut out, f.params.len() as u32);
        for s in &f.params {
            encode_spec(&mut out, s);
        }
    }
    out
}

fn encode_spec(out: &mut Vec<u8>, s: &ParamSpec) {
    put_bytes(out, s.name.as_bytes());
    put_bytes(out, s.description.as_bytes());
    // The native ABI keeps contract 0.1's flat spec (kind, default, min, max, choices): the host
    // reads it as it always has.
    let (kind, min, max, choices): (u8, Option<f64>, Option<f64>, &[String]) = match &s.type_ {
        ParamType::Boolean(_) => (0, None, None, &[]),
        ParamType::Integer(i) => (1, i.min.map(|m| m as f64), i.max.map(|m| m as f64), &[]),
        ParamType::Number(n) => (2, n.min, n.max, &[]),
        ParamType::Text(_) => (3, None, None, &[]),
        ParamType::Choice(c) => (4, None, None, &c.choices),
        ParamType::Media => (5, None, None, &[]),
    };
    out.push(kind);
    match s.default_value() {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_value(out, &v);
        }
    }
    put_f64_opt(out, min);
    put_f64_opt(out, max);
    put_u32(out, choices.len() as u32);
    for c in choices {
        put_bytes(out, c.as_bytes());
    }
    out.push(s.required as u8);
}

/// Encode steps as the host does (used by tests and benchmarks that call the library directly).
pub fn encode_steps(steps: &[Step]) -> Vec<u8> {
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

/// A bounds-checked reader over the host's bytes.
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
    fn value(&mut self) -> Result<Value, String> {
        Ok(match self.u8()? {
            V_BOOLEAN => Value::Boolean(self.u8()? != 0),
            V_INTEGER => Value::Integer(self.u64()? as i64),
            V_NUMBER => Value::Number(f64::from_bits(self.u64()?)),
            V_TEXT => Value::Text(self.string()?),
            V_MEDIA => Value::Media(Media { mime: self.string()?, bytes: self.bytes()?.to_vec() }),
            other => return Err(format!("unknown value tag {other}")),
        })
    }
}

/// Decode the host's steps.
pub fn decode_steps(bytes: &[u8]) -> Result<Vec<Step>, String> {
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    let mut r = Reader(bytes);
    let n = r.u32()?;
    let mut steps = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let name = r.string()?;
        let count = r.u32()?;
        let mut params = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            params.push(Param { name: r.string()?, value: r.value()? });
        }
        steps.push(Step { name, params });
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last step", r.0.len()));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the host's sink keeps.
    #[derive(Default)]
    struct Kept {
        image: Option<Image>,
        bytes: Vec<u8>,
    }

    unsafe extern "C" fn keep_image(ctx: *mut c_void, v: *const ImageView) -> i32 {
        let (kept, v) = unsafe { (&mut *(ctx as *mut Kept), &*v) };
        kept.image = Some(unsafe { owned_image(v) }.unwrap());
        0
    }
    unsafe extern "C" fn keep_bytes(ctx: *mut c_void, p: *const u8, n: usize) {
        let kept = unsafe { &mut *(ctx as *mut Kept) };
        kept.bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
    }

    fn call(image: &Image, stride: u32, steps: &[Step]) -> (i32, Kept) {
        let mut kept = Kept::default();
        let sink = Sink { ctx: &mut kept as *mut Kept as *mut c_void, image: keep_image, bytes: keep_bytes };
        // Rows padded to `stride` with junk the plugin must not read as pixels.
        let row = image.width as usize * 4;
        let mut padded = vec![0xAB; stride as usize * image.height as usize];
        for y in 0..image.height as usize {
            padded[y * stride as usize..][..row].copy_from_slice(&image.pixels[y * row..][..row]);
        }
        let view = ImageView { pixels: padded.as_ptr(), len: padded.len(), width: image.width, height: image.height, stride };
        let encoded = encode_steps(steps);
        let table = unsafe { &*atelier_native_plugin() };
        let status = unsafe { (table.apply)(table.ctx, &view, encoded.as_ptr(), encoded.len(), &sink) };
        (status, kept)
    }

    #[test]
    fn the_c_entry_points_give_what_run_chain_gives_even_with_padded_rows() {
        let image = crate::bench_image(64, 48);
        let steps = vec![
            Step { name: "resize".into(), params: vec![Param::new("width", 40i64)] },
            Step { name: "sharpen".into(), params: vec![Param::new("amount", 0.8), Param::new("sigma", 1.0)] },
        ];
        let (status, kept) = call(&image, 64 * 4 + 12, &steps);
        assert_eq!(status, STATUS_OK, "{}", String::from_utf8_lossy(&kept.bytes));
        let want = crate::run_chain(image, &steps).unwrap();
        let got = kept.image.unwrap();
        assert_eq!((got.width, got.height), (want.width, want.height));
        assert!(got.pixels == want.pixels);
    }

    #[test]
    fn errors_come_back_as_a_status_and_a_message() {
        let steps = vec![Step { name: "crop".into(), params: vec![Param::new("width", 500i64), Param::new("height", 1i64)] }];
        let (status, kept) = call(&crate::bench_image(10, 10), 40, &steps);
        assert_eq!(status, STATUS_INVALID_INPUT);
        assert!(String::from_utf8_lossy(&kept.bytes).contains("10x10 image"), "{}", String::from_utf8_lossy(&kept.bytes));
        let mut kept = Kept::default();
        let sink = Sink { ctx: &mut kept as *mut Kept as *mut c_void, image: keep_image, bytes: keep_bytes };
        let view = ImageView { pixels: std::ptr::null(), len: 0, width: 0, height: 0, stride: 0 };
        let junk = [1u8, 0, 0, 0, 200];
        let table = unsafe { &*atelier_native_plugin() };
        assert_eq!(unsafe { (table.apply)(table.ctx, &view, junk.as_ptr(), junk.len(), &sink) }, STATUS_BAD_ARGUMENT);
        assert!(String::from_utf8_lossy(&kept.bytes).contains("truncated"), "{}", String::from_utf8_lossy(&kept.bytes));
    }

    #[test]
    fn steps_round_trip_exactly() {
        let steps = vec![Step {
            name: "watermark".into(),
            params: vec![
                Param::new("text", "© x"),
                Param::new("opacity", 0.1 + 0.2),
                Param::new("size_px", -3i64),
                Param::new("flag", true),
                Param { name: "image".into(), value: Value::Media(Media { mime: "image/png".into(), bytes: vec![0, 1, 2] }) },
            ],
        }];
        assert_eq!(format!("{:?}", decode_steps(&encode_steps(&steps)).unwrap()), format!("{steps:?}"));
        assert!(decode_steps(&encode_steps(&steps)[..20]).is_err());
    }
}
