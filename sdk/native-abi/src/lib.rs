//! The C ABI of atelier's native plugin tier (docs/native.md): the `#[repr(C)]` table a native
//! filter library returns from [`ENTRY_SYMBOL`], the borrowed [`ImageView`], the host's [`Sink`]
//! callbacks, the status codes, and the byte encoding of steps and of `describe`'s answer.
//!
//! The atelier host and the plugin libraries both build against this crate, so the layout is
//! written once. A third-party native plugin can depend on it too: build a [`NativeTable`], export
//! it from `atelier_native_plugin`, decode the host's steps with [`decode_steps`] and answer
//! `describe` with [`encode_infos`].
//!
//! **The layout is frozen per ABI major.** Nothing here may change the struct layouts or the bytes
//! [`encode_steps`] and [`encode_infos`] produce without bumping [`ABI_MAJOR`]; compatible
//! additions (fields appended to [`NativeTable`]) bump [`ABI_MINOR`].
//!
//! Encoding: integers are little-endian; a string or byte list is a `u32` length and its bytes; an
//! option is a `u8` (0 none, 1 some) and the value; an `f64` travels as its IEEE bits, exactly.
//! Lengths and counts are `u32`: a single string, byte list or list longer than `u32::MAX` cannot
//! be encoded (the decoder then refuses the bytes rather than misreading them).

use std::ffi::c_void;
use std::fmt;

/// The one symbol a native library exports, NUL-terminated for `dlsym`:
/// `extern "C" fn() -> *const NativeTable`.
pub const ENTRY_SYMBOL: &[u8] = b"atelier_native_plugin\0";
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
#[derive(Clone, Copy, Debug)]
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

/// Host callbacks that copy a result into host memory during the call, so nothing allocated by
/// one side is freed by the other.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sink {
    /// The host's context for this call, passed back to the callbacks.
    pub ctx: *mut c_void,
    /// Take the result image (copied before returning); returns 0, or nonzero when the host
    /// refuses it (too large, inconsistent), which the plugin reports as an internal error.
    pub image: unsafe extern "C" fn(ctx: *mut c_void, image: *const ImageView) -> i32,
    /// Take bytes: the encoded describe answer or an error message (UTF-8).
    pub bytes: unsafe extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize),
}

/// What the library's [`ENTRY_SYMBOL`] returns (ABI 1.0): the ABI version, the table's own size
/// and the entry points. It lives as long as the library, which the host never unloads.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NativeTable {
    /// [`ABI_MAJOR`] as the library was built.
    pub abi_major: u32,
    /// [`ABI_MINOR`] as the library was built.
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
    /// `describe`: the filters, encoded with [`encode_infos`], written to `out.bytes`.
    pub describe: unsafe extern "C" fn(ctx: *mut c_void, out: *const Sink) -> i32,
    /// `apply`: run the `steps` (encoded with [`encode_steps`]) on `input`; the result goes to
    /// `out.image`, an error's message to `out.bytes`.
    pub apply: unsafe extern "C" fn(
        ctx: *mut c_void,
        input: *const ImageView,
        steps: *const u8,
        steps_len: usize,
        out: *const Sink,
    ) -> i32,
}

// SAFETY: the ABI requires the table and what it points to to live as long as the library (which
// is never unloaded) and its entry points to be callable from any thread at once.
unsafe impl Send for NativeTable {}
unsafe impl Sync for NativeTable {}

impl ImageView {
    /// A view of packed rows (`stride = width * 4`). The view borrows `pixels` without a
    /// lifetime: keep the buffer alive and unchanged while the view is in use.
    pub fn packed(width: u32, height: u32, pixels: &[u8]) -> ImageView {
        ImageView { pixels: pixels.as_ptr(), len: pixels.len(), width, height, stride: width.saturating_mul(4) }
    }

    /// Whether rows follow each other with no padding (`stride == width * 4`).
    pub fn is_packed(&self) -> bool {
        self.stride as u64 == self.width as u64 * 4
    }

    /// The bytes the view covers (`stride * (height - 1) + width * 4`, no trailing padding),
    /// after checking that its geometry fits in `len` and does not overflow.
    ///
    /// # Safety
    /// `self.pixels` is readable for `self.len` bytes, unchanged while the returned slice lives.
    pub unsafe fn checked_bytes(&self) -> Result<&[u8], AbiError> {
        let row = (self.width as usize).checked_mul(4).ok_or_else(|| AbiError::new("width overflows"))?;
        let (h, stride) = (self.height as usize, self.stride as usize);
        if stride < row {
            return Err(AbiError::new(format!("stride {stride} is less than width {} x 4", self.width)));
        }
        let need = if h == 0 || row == 0 {
            0
        } else {
            stride.checked_mul(h - 1).and_then(|n| n.checked_add(row)).ok_or_else(|| AbiError::new("size overflows"))?
        };
        if self.len < need || (need > 0 && self.pixels.is_null()) {
            return Err(AbiError::new(format!(
                "a {}x{} image with stride {stride} needs {need} bytes, the view has {}",
                self.width, self.height, self.len
            )));
        }
        if need == 0 {
            return Ok(&[]);
        }
        // SAFETY: checked above that `need <= len`; the caller vouches for `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts(self.pixels, need) })
    }

    /// Copy the view into packed rows (`width * 4 * height` bytes), checked as
    /// [`checked_bytes`](Self::checked_bytes) checks.
    ///
    /// # Safety
    /// As for [`checked_bytes`](Self::checked_bytes).
    pub unsafe fn to_packed(&self) -> Result<Vec<u8>, AbiError> {
        let src = unsafe { self.checked_bytes() }?;
        let (row, stride) = (self.width as usize * 4, self.stride as usize);
        if stride == row || src.is_empty() {
            return Ok(src.to_vec());
        }
        let mut pixels = Vec::with_capacity(row * self.height as usize);
        for y in 0..self.height as usize {
            pixels.extend_from_slice(&src[y * stride..y * stride + row]);
        }
        Ok(pixels)
    }
}

/// Why bytes or a view from the other side of the ABI were refused (truncated, a corrupt count, an
/// unknown tag, inconsistent geometry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbiError(String);

impl AbiError {
    fn new(message: impl Into<String>) -> AbiError {
        AbiError(message.into())
    }

    /// The message, for the caller's own error text.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AbiError {}

/// A parameter value as it crosses the ABI.
#[derive(Clone, Debug, PartialEq)]
pub enum WireValue {
    /// Tag 0: a `u8`, 0 or 1.
    Boolean(bool),
    /// Tag 1: an `i64`.
    Integer(i64),
    /// Tag 2: an `f64`'s IEEE bits (NaN payloads and `-0.0` survive).
    Number(f64),
    /// Tag 3: UTF-8 text.
    Text(String),
    /// Tag 4: an encoded image the host loaded: its media type, then its bytes.
    Media {
        /// The IANA media type (`image/png`).
        mime: String,
        /// The encoded bytes.
        bytes: Vec<u8>,
    },
}

/// One step of a chain: a filter name and its parameters, as `apply` receives them.
#[derive(Clone, Debug, PartialEq)]
pub struct WireStep {
    /// The filter's name, from `describe`.
    pub name: String,
    /// Parameter names and values, in the order given.
    pub params: Vec<(String, WireValue)>,
}

/// A parameter's kind on the wire (a `u8`): contract 0.1's flat spec.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireParamKind {
    /// 0: `true` / `false`.
    Boolean = 0,
    /// 1: a whole number.
    Integer = 1,
    /// 2: a real number.
    Number = 2,
    /// 3: free text.
    Text = 3,
    /// 4: one of `choices`.
    Choice = 4,
    /// 5: an image the host reads and passes as [`WireValue::Media`].
    Media = 5,
}

impl WireParamKind {
    /// The kind with this tag, if the ABI defines one.
    pub fn from_tag(tag: u8) -> Option<WireParamKind> {
        Some(match tag {
            0 => WireParamKind::Boolean,
            1 => WireParamKind::Integer,
            2 => WireParamKind::Number,
            3 => WireParamKind::Text,
            4 => WireParamKind::Choice,
            5 => WireParamKind::Media,
            _ => return None,
        })
    }

    /// Its tag on the wire.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// One parameter in `describe`'s answer, in the flat shape of contract 0.1: the host checks that
/// the default, bounds and choices fit the kind.
#[derive(Clone, Debug, PartialEq)]
pub struct WireParam {
    /// Name, lowercase with `_`.
    pub name: String,
    /// One line for tables.
    pub description: String,
    /// Its kind.
    pub kind: WireParamKind,
    /// The value used when the user gives none.
    pub default: Option<WireValue>,
    /// Inclusive lower bound (integer and number kinds).
    pub min: Option<f64>,
    /// Inclusive upper bound (integer and number kinds).
    pub max: Option<f64>,
    /// The allowed values (choice kind); empty otherwise.
    pub choices: Vec<String>,
    /// Whether the user must give it.
    pub required: bool,
}

/// One filter in `describe`'s answer.
#[derive(Clone, Debug, PartialEq)]
pub struct WireFilterInfo {
    /// The step name.
    pub name: String,
    /// One line.
    pub description: String,
    /// Its parameters.
    pub params: Vec<WireParam>,
}

const V_BOOLEAN: u8 = 0;
const V_INTEGER: u8 = 1;
const V_NUMBER: u8 = 2;
const V_TEXT: u8 = 3;
const V_MEDIA: u8 = 4;

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    put_u32(out, n as u32);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_count(out, b.len());
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

fn put_value(out: &mut Vec<u8>, v: &WireValue) {
    match v {
        WireValue::Boolean(b) => out.extend_from_slice(&[V_BOOLEAN, *b as u8]),
        WireValue::Integer(i) => {
            out.push(V_INTEGER);
            out.extend_from_slice(&i.to_le_bytes());
        }
        WireValue::Number(f) => {
            out.push(V_NUMBER);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        WireValue::Text(t) => {
            out.push(V_TEXT);
            put_bytes(out, t.as_bytes());
        }
        WireValue::Media { mime, bytes } => {
            out.push(V_MEDIA);
            put_bytes(out, mime.as_bytes());
            put_bytes(out, bytes);
        }
    }
}

/// Encode steps for `apply`: `u32 n`, then for each step its name, `u32 m` and `m` × (param
/// name, value).
pub fn encode_steps(steps: &[WireStep]) -> Vec<u8> {
    let mut out = vec![];
    put_count(&mut out, steps.len());
    for s in steps {
        put_bytes(&mut out, s.name.as_bytes());
        put_count(&mut out, s.params.len());
        for (name, value) in &s.params {
            put_bytes(&mut out, name.as_bytes());
            put_value(&mut out, value);
        }
    }
    out
}

/// Decode `apply`'s steps. Zero bytes are read as no steps; bytes left after the last step are
/// an error.
pub fn decode_steps(bytes: &[u8]) -> Result<Vec<WireStep>, AbiError> {
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    let mut r = Reader(bytes);
    let n = r.count()?;
    let mut steps = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string()?;
        let m = r.count()?;
        let mut params = Vec::with_capacity(m);
        for _ in 0..m {
            params.push((r.string()?, r.value()?));
        }
        steps.push(WireStep { name, params });
    }
    r.finish("step")?;
    Ok(steps)
}

/// Encode `describe`'s answer: `u32 n`, then for each filter its name, description, `u32 m` and
/// `m` × param spec (name, description, kind `u8`, `option<value>` default, `option<f64>` min,
/// `option<f64>` max, `u32 k` choices, required `u8`).
pub fn encode_infos(infos: &[WireFilterInfo]) -> Vec<u8> {
    let mut out = vec![];
    put_count(&mut out, infos.len());
    for f in infos {
        put_bytes(&mut out, f.name.as_bytes());
        put_bytes(&mut out, f.description.as_bytes());
        put_count(&mut out, f.params.len());
        for p in &f.params {
            put_bytes(&mut out, p.name.as_bytes());
            put_bytes(&mut out, p.description.as_bytes());
            out.push(p.kind.tag());
            match &p.default {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    put_value(&mut out, v);
                }
            }
            put_f64_opt(&mut out, p.min);
            put_f64_opt(&mut out, p.max);
            put_count(&mut out, p.choices.len());
            for c in &p.choices {
                put_bytes(&mut out, c.as_bytes());
            }
            out.push(p.required as u8);
        }
    }
    out
}

/// Decode `describe`'s answer. Bytes left after the last filter are an error.
pub fn decode_infos(bytes: &[u8]) -> Result<Vec<WireFilterInfo>, AbiError> {
    let mut r = Reader(bytes);
    let n = r.count()?;
    let mut infos = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string()?;
        let description = r.string()?;
        let m = r.count()?;
        let mut params = Vec::with_capacity(m);
        for _ in 0..m {
            let name = r.string()?;
            let description = r.string()?;
            let tag = r.u8()?;
            let Some(kind) = WireParamKind::from_tag(tag) else {
                return Err(AbiError::new(format!("parameter `{name}`: unknown kind {tag}")));
            };
            let default = match r.u8()? {
                0 => None,
                _ => Some(r.value()?),
            };
            let (min, max) = (r.f64_opt()?, r.f64_opt()?);
            let k = r.count()?;
            let mut choices = Vec::with_capacity(k);
            for _ in 0..k {
                choices.push(r.string()?);
            }
            let required = r.u8()? != 0;
            params.push(WireParam { name, description, kind, default, min, max, choices, required });
        }
        infos.push(WireFilterInfo { name, description, params });
    }
    r.finish("filter")?;
    Ok(infos)
}

/// A bounds-checked reader over the other side's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AbiError> {
        if self.0.len() < n {
            return Err(AbiError::new(format!("truncated: wanted {n} more bytes, {} left", self.0.len())));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, AbiError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, AbiError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, AbiError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Result<&'a [u8], AbiError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, AbiError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| AbiError::new("a string is not UTF-8"))
    }

    fn f64_opt(&mut self) -> Result<Option<f64>, AbiError> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(f64::from_bits(self.u64()?)),
        })
    }

    fn value(&mut self) -> Result<WireValue, AbiError> {
        Ok(match self.u8()? {
            V_BOOLEAN => WireValue::Boolean(self.u8()? != 0),
            V_INTEGER => WireValue::Integer(self.u64()? as i64),
            V_NUMBER => WireValue::Number(f64::from_bits(self.u64()?)),
            V_TEXT => WireValue::Text(self.string()?),
            V_MEDIA => WireValue::Media { mime: self.string()?, bytes: self.bytes()?.to_vec() },
            other => return Err(AbiError::new(format!("unknown value tag {other}"))),
        })
    }

    /// A count of list elements, bounded by the remaining bytes (every element takes at least
    /// one), so a corrupt count cannot make the reader reserve gigabytes.
    fn count(&mut self) -> Result<usize, AbiError> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(AbiError::new(format!("a count of {n} with {} bytes left", self.0.len())));
        }
        Ok(n)
    }

    /// Refuse bytes after the last `what`.
    fn finish(&self, what: &str) -> Result<(), AbiError> {
        if self.0.is_empty() { Ok(()) } else { Err(AbiError::new(format!("{} bytes after the last {what}", self.0.len()))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_steps() -> Vec<WireStep> {
        vec![
            WireStep {
                name: "watermark".into(),
                params: vec![
                    ("text".into(), WireValue::Text("© x".into())),
                    ("opacity".into(), WireValue::Number(0.1 + 0.2)),
                    ("size_px".into(), WireValue::Integer(-3)),
                    ("flag".into(), WireValue::Boolean(true)),
                    ("off".into(), WireValue::Boolean(false)),
                    ("image".into(), WireValue::Media { mime: "image/png".into(), bytes: vec![0, 1, 2, 255] }),
                    ("empty".into(), WireValue::Media { mime: String::new(), bytes: vec![] }),
                    ("big".into(), WireValue::Integer(i64::MIN)),
                ],
            },
            WireStep { name: "grayscale".into(), params: vec![] },
        ]
    }

    fn sample_infos() -> Vec<WireFilterInfo> {
        vec![
            WireFilterInfo {
                name: "resize".into(),
                description: "Scale".into(),
                params: vec![
                    WireParam {
                        name: "width".into(),
                        description: "px".into(),
                        kind: WireParamKind::Integer,
                        default: Some(WireValue::Integer(640)),
                        min: Some(1.0),
                        max: Some(65535.0),
                        choices: vec![],
                        required: false,
                    },
                    WireParam {
                        name: "filter".into(),
                        description: String::new(),
                        kind: WireParamKind::Choice,
                        default: Some(WireValue::Text("lanczos3".into())),
                        min: None,
                        max: None,
                        choices: vec!["nearest".into(), "lanczos3".into()],
                        required: true,
                    },
                    WireParam {
                        name: "amount".into(),
                        description: "ü".into(),
                        kind: WireParamKind::Number,
                        default: Some(WireValue::Number(-0.0)),
                        min: Some(f64::MIN_POSITIVE),
                        max: Some(f64::INFINITY),
                        choices: vec![],
                        required: false,
                    },
                    WireParam {
                        name: "logo".into(),
                        description: String::new(),
                        kind: WireParamKind::Media,
                        default: None,
                        min: None,
                        max: None,
                        choices: vec![],
                        required: false,
                    },
                ],
            },
            WireFilterInfo { name: "grayscale".into(), description: String::new(), params: vec![] },
        ]
    }

    #[test]
    fn steps_round_trip_exactly() {
        let steps = sample_steps();
        let bytes = encode_steps(&steps);
        assert_eq!(decode_steps(&bytes).unwrap(), steps);
        // Every strict prefix is refused, never misread.
        for cut in 0..bytes.len() {
            if cut == 0 {
                continue; // zero bytes mean no steps
            }
            assert!(decode_steps(&bytes[..cut]).is_err(), "a prefix of {cut} bytes was accepted");
        }
        assert_eq!(decode_steps(&encode_steps(&[])).unwrap(), vec![]);
        assert_eq!(decode_steps(&[]).unwrap(), vec![]);
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(decode_steps(&extra).unwrap_err().message(), "1 bytes after the last step");
    }

    #[test]
    fn numbers_travel_as_their_exact_bits() {
        let odd = [f64::from_bits(0x7ff8_0000_dead_beef), -0.0, f64::NEG_INFINITY, 0.1 + 0.2, f64::MIN_POSITIVE / 2.0];
        let steps: Vec<WireStep> =
            odd.iter().map(|&f| WireStep { name: "n".into(), params: vec![("x".into(), WireValue::Number(f))] }).collect();
        let back = decode_steps(&encode_steps(&steps)).unwrap();
        for (want, got) in odd.iter().zip(&back) {
            let WireValue::Number(got) = got.params[0].1 else { panic!("{got:?}") };
            assert_eq!(got.to_bits(), want.to_bits());
        }
        let mut infos = sample_infos();
        infos[0].params[0].min = Some(odd[0]);
        let back = decode_infos(&encode_infos(&infos)).unwrap();
        assert_eq!(back[0].params[0].min.unwrap().to_bits(), odd[0].to_bits());
        let Some(WireValue::Number(z)) = back[0].params[2].default else { panic!() };
        assert_eq!(z.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn infos_round_trip_exactly() {
        let infos = sample_infos();
        let bytes = encode_infos(&infos);
        assert_eq!(decode_infos(&bytes).unwrap(), infos);
        for cut in 0..bytes.len() {
            assert!(decode_infos(&bytes[..cut]).is_err(), "a prefix of {cut} bytes was accepted");
        }
        assert_eq!(decode_infos(&encode_infos(&[])).unwrap(), vec![]);
    }

    #[test]
    fn the_byte_layout_is_the_documented_one() {
        // Frozen for ABI 1: docs/native.md spells these bytes out.
        let steps = [WireStep { name: "a".into(), params: vec![("b".into(), WireValue::Boolean(true)), ("c".into(), WireValue::Integer(-2))] }];
        #[rustfmt::skip]
        let want = [
            1, 0, 0, 0, 1, 0, 0, 0, b'a', 2, 0, 0, 0,
            1, 0, 0, 0, b'b', 0, 1,
            1, 0, 0, 0, b'c', 1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(encode_steps(&steps), want);
        let infos = [WireFilterInfo {
            name: "f".into(),
            description: String::new(),
            params: vec![WireParam {
                name: "p".into(),
                description: String::new(),
                kind: WireParamKind::Choice,
                default: Some(WireValue::Text("x".into())),
                min: None,
                max: Some(1.0),
                choices: vec!["x".into()],
                required: true,
            }],
        }];
        #[rustfmt::skip]
        let want = [
            1, 0, 0, 0, 1, 0, 0, 0, b'f', 0, 0, 0, 0, 1, 0, 0, 0,
            1, 0, 0, 0, b'p', 0, 0, 0, 0, 4,
            1, 3, 1, 0, 0, 0, b'x',
            0, 1, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
            1, 0, 0, 0, 1, 0, 0, 0, b'x', 1,
        ];
        assert_eq!(encode_infos(&infos), want);
    }

    #[test]
    fn a_corrupt_describe_answer_is_an_error_not_a_huge_allocation() {
        assert!(decode_infos(&[0xff, 0xff, 0xff, 0x7f]).unwrap_err().message().contains("count"));
        assert!(decode_infos(&[1, 0, 0, 0, 9, 0, 0, 0, b'x']).unwrap_err().message().contains("truncated"));
        assert_eq!(decode_infos(&[0, 0, 0, 0]).unwrap().len(), 0);
        // A huge parameter or choice count inside an otherwise valid filter.
        let mut bytes = encode_infos(&[WireFilterInfo { name: "f".into(), description: String::new(), params: vec![] }]);
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_infos(&bytes).unwrap_err().message().contains("count"));
        assert!(decode_steps(&[0xff, 0xff, 0xff, 0xff]).unwrap_err().message().contains("count"));
    }

    #[test]
    fn unknown_tags_are_named() {
        let mut bytes = encode_steps(&[WireStep { name: "s".into(), params: vec![("p".into(), WireValue::Boolean(false))] }]);
        let tag_at = bytes.len() - 2;
        bytes[tag_at] = 9;
        assert_eq!(decode_steps(&bytes).unwrap_err().message(), "unknown value tag 9");
        let mut infos = sample_infos();
        infos.truncate(1);
        infos[0].params.truncate(1);
        let mut bytes = encode_infos(&infos);
        // name "resize", description "Scale", count, then the spec: name "width", description "px", kind.
        let kind_at = 4 + (4 + 6) + (4 + 5) + 4 + (4 + 5) + (4 + 2);
        assert_eq!(bytes[kind_at], WireParamKind::Integer.tag());
        bytes[kind_at] = 6;
        assert_eq!(decode_infos(&bytes).unwrap_err().message(), "parameter `width`: unknown kind 6");
        let not_utf8 = [1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0, 0, 0, 0];
        assert!(decode_steps(&not_utf8).unwrap_err().message().contains("UTF-8"));
    }

    #[test]
    fn a_view_is_checked_and_packed() {
        let rows = [1u8, 2, 3, 4, 9, 9, 5, 6, 7, 8, 9, 9];
        let v = ImageView { pixels: rows.as_ptr(), len: rows.len(), width: 1, height: 2, stride: 6 };
        assert!(!v.is_packed());
        assert_eq!(unsafe { v.checked_bytes() }.unwrap().len(), 10);
        assert_eq!(unsafe { v.to_packed() }.unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
        let short = ImageView { len: 9, ..v };
        assert!(unsafe { short.to_packed() }.unwrap_err().message().contains("needs 10 bytes"));
        let narrow = ImageView { stride: 3, ..v };
        assert!(unsafe { narrow.to_packed() }.unwrap_err().message().contains("stride 3"));
        let null = ImageView { pixels: std::ptr::null(), ..v };
        assert!(unsafe { null.to_packed() }.is_err());
        let empty = ImageView { pixels: std::ptr::null(), len: 0, width: 0, height: 0, stride: 0 };
        assert_eq!(unsafe { empty.to_packed() }.unwrap(), Vec::<u8>::new());
        let huge = ImageView { pixels: rows.as_ptr(), len: rows.len(), width: u32::MAX, height: u32::MAX, stride: u32::MAX };
        assert!(unsafe { huge.to_packed() }.is_err());
        let packed = ImageView::packed(1, 2, &rows[..8]);
        assert!(packed.is_packed());
        assert_eq!(unsafe { packed.to_packed() }.unwrap(), rows[..8]);
    }

    #[test]
    fn the_table_layout_is_abi_1() {
        let p = size_of::<usize>();
        assert_eq!(size_of::<NativeTable>(), 8 + 6 * p);
        assert_eq!(std::mem::offset_of!(NativeTable, size), 8);
        assert_eq!(std::mem::offset_of!(NativeTable, ctx), 8 + 3 * p);
        assert_eq!(std::mem::offset_of!(ImageView, width), 2 * p);
        assert_eq!(size_of::<Sink>(), 3 * p);
        assert_eq!(ENTRY_SYMBOL.last(), Some(&0));
        assert_eq!((ABI_MAJOR, ABI_MINOR), (1, 0));
    }
}
