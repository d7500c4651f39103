//! Conversions every contract version shares (the records 0.1 and 0.2 spell alike), written once
//! and expanded inside each binding module against its own generated types. Values from the
//! guest are checked: it is untrusted.

/// Expand the shared conversions for the generated modules `$t` (types), `$b` (backend exports)
/// and `$f` (filters exports) of one contract version.
macro_rules! shared_conversions {
    ($t:ident, $b:ident, $f:ident) => {
        impl From<crate::types::Media> for $t::Media {
            fn from(m: crate::types::Media) -> Self {
                $t::Media { mime: m.mime, bytes: m.bytes }
            }
        }

        impl From<crate::types::Image> for $t::Image {
            fn from(i: crate::types::Image) -> Self {
                $t::Image { width: i.width, height: i.height, pixels: i.pixels }
            }
        }

        /// A filter's output, as given: its size against the limits and its buffer against its
        /// size are checked where every filter's output is (`imageio::check_image`, naming the step).
        impl From<$t::Image> for crate::types::Image {
            fn from(i: $t::Image) -> Self {
                crate::types::Image { width: i.width, height: i.height, pixels: i.pixels }
            }
        }

        impl From<crate::types::Value> for $t::Value {
            fn from(v: crate::types::Value) -> Self {
                use crate::types::Value as V;
                match v {
                    V::Boolean(b) => $t::Value::Boolean(b),
                    V::Integer(i) => $t::Value::Integer(i),
                    V::Number(n) => $t::Value::Number(n),
                    V::Text(s) => $t::Value::Text(s),
                    V::Media(m) => $t::Value::Media(m.into()),
                }
            }
        }

        impl From<$t::Value> for crate::types::Value {
            fn from(v: $t::Value) -> Self {
                use crate::types::Value as V;
                match v {
                    $t::Value::Boolean(b) => V::Boolean(b),
                    $t::Value::Integer(i) => V::Integer(i),
                    $t::Value::Number(n) => V::Number(n),
                    $t::Value::Text(s) => V::Text(s),
                    $t::Value::Media(m) => V::Media(crate::types::Media { mime: m.mime, bytes: m.bytes }),
                }
            }
        }

        impl From<crate::types::Param> for $t::Param {
            fn from(p: crate::types::Param) -> Self {
                $t::Param { name: p.name, value: p.value.into() }
            }
        }

        impl From<$t::Error> for crate::types::PluginError {
            fn from(e: $t::Error) -> Self {
                use crate::types::PluginError as E;
                match e {
                    $t::Error::InvalidInput(m) => E::InvalidInput(m),
                    $t::Error::Unauthorized(m) => E::Unauthorized(m),
                    $t::Error::RateLimited(r) => E::RateLimited(crate::types::RateLimit { retry_after_ms: r.retry_after_ms, message: r.message }),
                    $t::Error::Moderated(m) => E::Moderated(m),
                    $t::Error::Unavailable(m) => E::Unavailable(m),
                    $t::Error::Provider(p) => E::Provider(crate::types::ProviderError { code: p.code, message: p.message }),
                    $t::Error::Internal(m) => E::Internal(m),
                }
            }
        }

        /// Usage is the provider's report, kept as given: what is recorded of it is capped
        /// where it is recorded (`jobs::runner::usage_json`), not refused (the job is billed).
        impl From<$t::Usage> for crate::types::Usage {
            fn from(u: $t::Usage) -> Self {
                crate::types::Usage {
                    images: u.images.into_iter().map(|i| crate::types::ImageUsage { width: i.width, height: i.height, count: i.count }).collect(),
                    input_tokens: u.input_tokens,
                    output_tokens: u.output_tokens,
                    video_seconds: u.video_seconds,
                }
            }
        }

        impl From<$b::InputPlan> for crate::types::InputPlan {
            fn from(p: $b::InputPlan) -> Self {
                crate::types::InputPlan { exact_size: p.exact_size, max_side: p.max_side }
            }
        }

        impl From<$b::Pending> for crate::types::Pending {
            fn from(p: $b::Pending) -> Self {
                crate::types::Pending { token: p.token, retry_after_ms: p.retry_after_ms }
            }
        }

        impl From<$b::Download> for crate::types::Download {
            fn from(d: $b::Download) -> Self {
                crate::types::Download { url: d.url, headers: d.headers, expires_at_ms: d.expires_at_ms }
            }
        }

        impl From<crate::types::Step> for $f::Step {
            fn from(s: crate::types::Step) -> Self {
                $f::Step { name: s.name, params: s.params.into_iter().map(Into::into).collect() }
            }
        }

        /// A guest's progress fraction: a number from 0 to 1 or nothing.
        fn checked_fraction(f: Option<f32>) -> Result<Option<f32>, String> {
            match f {
                Some(x) if !x.is_finite() || !(0.0..=1.0).contains(&x) => Err(format!("reported progress {x}, not a fraction from 0 to 1")),
                f => Ok(f),
            }
        }

        /// A guest's filter list: each filter named, its parameters checked.
        fn filter_infos(list: Vec<$f::FilterInfo>) -> Result<Vec<crate::types::FilterInfo>, String> {
            list.into_iter()
                .map(|f| {
                    if f.name.is_empty() {
                        return Err("described a filter with no name".to_string());
                    }
                    let params = f.params.into_iter().map(param_spec).collect::<Result<Vec<_>, String>>().map_err(|e| format!("filter `{}`: {e}", f.name))?;
                    Ok(crate::types::FilterInfo { name: f.name, description: f.description, params })
                })
                .collect()
        }
    };
}

pub(crate) use shared_conversions;
