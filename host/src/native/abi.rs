//! The host's side of the native tier's C ABI (docs/native.md). The ABI itself — the
//! `#[repr(C)]` table, the image view, the sink, the status codes and the byte encoding — lives
//! once in the `atelier-native-abi` crate, which `plugins/filters/src/native.rs` builds against
//! too; this module keeps what is the host's: its sink callbacks and the conversions between its
//! own types and the wire model. `tests/tests/native_tier.rs` runs one side against the other.

use crate::types;
use atelier_native_abi::{WireFilterInfo, WireParamKind, WireStep, WireValue};
use std::ffi::c_void;

pub(crate) use atelier_native_abi::{
    ABI_MAJOR, ENTRY_SYMBOL, ImageView, NativeTable, STATUS_BAD_ARGUMENT, STATUS_INTERNAL, STATUS_INVALID_INPUT, STATUS_OK, STATUS_PANIC, Sink,
};

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
    let pixels = unsafe { v.to_packed() }.map_err(|e| e.to_string())?;
    Ok(types::Image { width: v.width, height: v.height, pixels })
}

fn wire_value(v: &types::Value) -> WireValue {
    match v {
        types::Value::Boolean(b) => WireValue::Boolean(*b),
        types::Value::Integer(i) => WireValue::Integer(*i),
        types::Value::Number(f) => WireValue::Number(*f),
        types::Value::Text(t) => WireValue::Text(t.clone()),
        types::Value::Media(m) => WireValue::Media { mime: m.mime.clone(), bytes: m.bytes.clone() },
    }
}

fn host_value(v: WireValue) -> types::Value {
    match v {
        WireValue::Boolean(b) => types::Value::Boolean(b),
        WireValue::Integer(i) => types::Value::Integer(i),
        WireValue::Number(f) => types::Value::Number(f),
        WireValue::Text(t) => types::Value::Text(t),
        WireValue::Media { mime, bytes } => types::Value::Media(types::Media { mime, bytes }),
    }
}

/// Steps as a library reads them.
pub(crate) fn encode_steps(steps: &[types::Step]) -> Vec<u8> {
    let wire: Vec<WireStep> = steps
        .iter()
        .map(|s| WireStep { name: s.name.clone(), params: s.params.iter().map(|p| (p.name.clone(), wire_value(&p.value))).collect() })
        .collect();
    atelier_native_abi::encode_steps(&wire)
}

/// A library's `describe` answer, each parameter checked as contract 0.1's flat spec is.
pub(crate) fn decode_infos(bytes: &[u8]) -> Result<Vec<types::FilterInfo>, String> {
    let wire: Vec<WireFilterInfo> = atelier_native_abi::decode_infos(bytes).map_err(|e| e.to_string())?;
    wire.into_iter()
        .map(|f| {
            let params = f
                .params
                .into_iter()
                .map(|p| {
                    let kind = match p.kind {
                        WireParamKind::Boolean => types::ParamKind::Boolean,
                        WireParamKind::Integer => types::ParamKind::Integer,
                        WireParamKind::Number => types::ParamKind::Number,
                        WireParamKind::Text => types::ParamKind::Text,
                        WireParamKind::Choice => types::ParamKind::Choice,
                        WireParamKind::Media => types::ParamKind::Media,
                    };
                    types::ParamSpec::from_flat(p.name, p.description, kind, p.default.map(host_value), p.min, p.max, p.choices, p.required)
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(types::FilterInfo { name: f.name, description: f.description, params })
        })
        .collect()
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
    fn host_steps_reach_the_library_as_given() {
        let steps = vec![types::Step {
            name: "watermark".into(),
            params: vec![
                types::Param { name: "text".into(), value: types::Value::Text("© x".into()) },
                types::Param { name: "opacity".into(), value: types::Value::Number(0.1 + 0.2) },
                types::Param { name: "size_px".into(), value: types::Value::Integer(-3) },
                types::Param { name: "tile".into(), value: types::Value::Boolean(true) },
                types::Param { name: "image".into(), value: types::Value::Media(types::Media { mime: "image/png".into(), bytes: vec![0, 1, 2] }) },
            ],
        }];
        let got = atelier_native_abi::decode_steps(&encode_steps(&steps)).unwrap();
        let want = vec![WireStep {
            name: "watermark".into(),
            params: vec![
                ("text".into(), WireValue::Text("© x".into())),
                ("opacity".into(), WireValue::Number(0.1 + 0.2)),
                ("size_px".into(), WireValue::Integer(-3)),
                ("tile".into(), WireValue::Boolean(true)),
                ("image".into(), WireValue::Media { mime: "image/png".into(), bytes: vec![0, 1, 2] }),
            ],
        }];
        assert_eq!(got, want);
    }

    #[test]
    fn a_describe_answer_becomes_checked_filter_infos() {
        let param = |kind, default, min, max, choices: &[&str]| atelier_native_abi::WireParam {
            name: "p".into(),
            description: "d".into(),
            kind,
            default,
            min,
            max,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            required: false,
        };
        let info = |params| vec![WireFilterInfo { name: "f".into(), description: "one line".into(), params }];
        let good = info(vec![
            param(WireParamKind::Integer, Some(WireValue::Integer(3)), Some(1.0), Some(10.0), &[]),
            param(WireParamKind::Choice, Some(WireValue::Text("b".into())), None, None, &["a", "b"]),
            param(WireParamKind::Media, None, None, None, &[]),
        ]);
        let infos = decode_infos(&atelier_native_abi::encode_infos(&good)).unwrap();
        assert_eq!((infos[0].name.as_str(), infos[0].description.as_str()), ("f", "one line"));
        let ty: Vec<_> = infos[0].params.iter().map(|p| p.ty.clone()).collect();
        assert_eq!(
            ty,
            [
                types::ParamType::Integer { default: Some(3), min: Some(1), max: Some(10) },
                types::ParamType::Choice { default: Some("b".into()), choices: vec!["a".into(), "b".into()] },
                types::ParamType::Media,
            ]
        );
        // The flat spec is checked as contract 0.1's is: a default that does not fit its kind.
        let bad = info(vec![param(WireParamKind::Integer, Some(WireValue::Text("x".into())), None, None, &[])]);
        let e = decode_infos(&atelier_native_abi::encode_infos(&bad)).unwrap_err();
        assert!(e.contains("parameter `p`") && e.contains("does not fit"), "{e}");
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
