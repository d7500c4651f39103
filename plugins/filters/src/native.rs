//! The native tier's C ABI (docs/native.md): on the host target this crate's cdylib exports
//! [`atelier_native_plugin`], which returns a `#[repr(C)]` table of entry points over the same
//! [`run_chain`](crate::run_chain) and [`filter_infos`](crate::params::filter_infos) the wasm
//! component runs, so both tiers compute the same pixels from one source.
//!
//! Memory never changes hands: the input image and the encoded steps are borrowed from the host
//! for the call, and every result (image, describe bytes, error text) is handed to a host
//! callback that copies it into host-allocated memory before the call returns. Every entry point
//! catches panics (a panic unwinding out of `extern "C"` aborts the host since Rust 1.81).
//!
//! The ABI itself (the `#[repr(C)]` structs, status codes and byte encoding) is the
//! `atelier-native-abi` crate, shared with the host; this module only converts between the SDK's
//! types and that crate's wire model.

use crate::params;
use atelier_native_abi::{
    ABI_MAJOR, ABI_MINOR, ImageView, NativeTable, STATUS_BAD_ARGUMENT, STATUS_INTERNAL, STATUS_INVALID_INPUT, STATUS_OK, STATUS_PANIC, Sink,
    WireFilterInfo, WireParam, WireParamKind, WireStep, WireValue,
};
use atelier_sdk::{Error, FilterInfo, Image, Media, Param, ParamSpec, ParamType, Step, Value};
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

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
    match catch_unwind(|| atelier_native_abi::encode_infos(&wire_infos(&params::filter_infos()))) {
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
        let steps = match atelier_native_abi::decode_steps(bytes) {
            Ok(s) => sdk_steps(s),
            Err(m) => return (STATUS_BAD_ARGUMENT, Some(format!("steps: {m}")), None),
        };
        // Packed rows are read where they lie (no full-size copy before a leading resize).
        let result = if view.is_packed() {
            match unsafe { view.checked_bytes() } {
                Ok(pixels) => crate::run_chain_borrowed(view.width, view.height, pixels, &steps),
                Err(m) => return (STATUS_BAD_ARGUMENT, Some(m.to_string()), None),
            }
        } else {
            match unsafe { view.to_packed() } {
                Ok(pixels) => crate::run_chain(Image { width: view.width, height: view.height, pixels }, &steps),
                Err(m) => return (STATUS_BAD_ARGUMENT, Some(m.to_string()), None),
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
            let view = ImageView::packed(image.width, image.height, &image.pixels);
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

/// The SDK's filter descriptions in the ABI's flat shape (contract 0.1's: kind, default, min, max,
/// choices), which the host reads as it always has.
fn wire_infos(infos: &[FilterInfo]) -> Vec<WireFilterInfo> {
    infos
        .iter()
        .map(|f| WireFilterInfo { name: f.name.clone(), description: f.description.clone(), params: f.params.iter().map(wire_param).collect() })
        .collect()
}

fn wire_param(s: &ParamSpec) -> WireParam {
    let (kind, min, max, choices) = match &s.type_ {
        ParamType::Boolean(_) => (WireParamKind::Boolean, None, None, vec![]),
        ParamType::Integer(i) => (WireParamKind::Integer, i.min.map(|m| m as f64), i.max.map(|m| m as f64), vec![]),
        ParamType::Number(n) => (WireParamKind::Number, n.min, n.max, vec![]),
        ParamType::Text(_) => (WireParamKind::Text, None, None, vec![]),
        ParamType::Choice(c) => (WireParamKind::Choice, None, None, c.choices.clone()),
        ParamType::Media => (WireParamKind::Media, None, None, vec![]),
    };
    WireParam {
        name: s.name.clone(),
        description: s.description.clone(),
        kind,
        default: s.default_value().map(wire_value),
        min,
        max,
        choices,
        required: s.required,
    }
}

fn wire_value(v: Value) -> WireValue {
    match v {
        Value::Boolean(b) => WireValue::Boolean(b),
        Value::Integer(i) => WireValue::Integer(i),
        Value::Number(f) => WireValue::Number(f),
        Value::Text(t) => WireValue::Text(t),
        Value::Media(m) => WireValue::Media { mime: m.mime, bytes: m.bytes },
    }
}

/// The host's steps as the SDK's, for [`run_chain`](crate::run_chain).
fn sdk_steps(steps: Vec<WireStep>) -> Vec<Step> {
    steps
        .into_iter()
        .map(|s| Step {
            name: s.name,
            params: s
                .params
                .into_iter()
                .map(|(name, value)| Param {
                    name,
                    value: match value {
                        WireValue::Boolean(b) => Value::Boolean(b),
                        WireValue::Integer(i) => Value::Integer(i),
                        WireValue::Number(f) => Value::Number(f),
                        WireValue::Text(t) => Value::Text(t),
                        WireValue::Media { mime, bytes } => Value::Media(Media { mime, bytes }),
                    },
                })
                .collect(),
        })
        .collect()
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
        let pixels = unsafe { v.to_packed() }.unwrap();
        kept.image = Some(Image { width: v.width, height: v.height, pixels });
        0
    }
    unsafe extern "C" fn keep_bytes(ctx: *mut c_void, p: *const u8, n: usize) {
        let kept = unsafe { &mut *(ctx as *mut Kept) };
        kept.bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
    }

    /// The SDK's steps as the host sends them (the inverse of [`sdk_steps`]).
    fn wire_steps(steps: &[Step]) -> Vec<WireStep> {
        let wire = |v: &Value| match v {
            Value::Boolean(b) => WireValue::Boolean(*b),
            Value::Integer(i) => WireValue::Integer(*i),
            Value::Number(f) => WireValue::Number(*f),
            Value::Text(t) => WireValue::Text(t.clone()),
            Value::Media(m) => WireValue::Media { mime: m.mime.clone(), bytes: m.bytes.clone() },
        };
        steps.iter().map(|s| WireStep { name: s.name.clone(), params: s.params.iter().map(|p| (p.name.clone(), wire(&p.value))).collect() }).collect()
    }

    fn encode_steps(steps: &[Step]) -> Vec<u8> {
        atelier_native_abi::encode_steps(&wire_steps(steps))
    }

    fn decode_steps(bytes: &[u8]) -> Result<Vec<Step>, atelier_native_abi::AbiError> {
        atelier_native_abi::decode_steps(bytes).map(sdk_steps)
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

    #[test]
    fn describe_answers_the_filters_in_the_flat_shape() {
        let mut kept = Kept::default();
        let sink = Sink { ctx: &mut kept as *mut Kept as *mut c_void, image: keep_image, bytes: keep_bytes };
        let table = unsafe { &*atelier_native_plugin() };
        assert_eq!((table.abi_major, table.abi_minor, table.size), (ABI_MAJOR, ABI_MINOR, size_of::<NativeTable>()));
        assert_eq!(unsafe { (table.describe)(table.ctx, &sink) }, STATUS_OK);
        let infos = atelier_native_abi::decode_infos(&kept.bytes).unwrap();
        assert_eq!(infos, wire_infos(&params::filter_infos()));
        let resize = infos.iter().find(|f| f.name == "resize").expect("resize is described");
        let width = resize.params.iter().find(|p| p.name == "width").expect("resize has a width");
        assert_eq!(width.kind, WireParamKind::Integer);
        assert!(infos.iter().any(|f| f.params.iter().any(|p| p.kind == WireParamKind::Choice && !p.choices.is_empty())));
    }
}
