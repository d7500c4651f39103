//! Run a filter chain natively on an image file, to look at results without the host:
//! `cargo run -p plugin-filters --release --example apply -- in.png out.png resize:width=800 watermark:text=hi`
//! Each step is `name` or `name:key=value,key=value`; values are typed by the filter's spec.

use atelier_sdk::{Image, Media, Param, ParamType, Step, Value};
use plugin_filters::{params, run_chain};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, steps @ ..] = args.as_slice() else {
        return Err("usage: apply IN OUT STEP...  (STEP = name:key=value,...)".into());
    };
    let decoded = image::open(input)?.to_rgba8();
    let image = Image { width: decoded.width(), height: decoded.height(), pixels: decoded.into_raw() };
    let steps = steps.iter().map(|s| parse_step(s)).collect::<Result<Vec<_>, _>>()?;
    let out = run_chain(image, &steps).map_err(|e| format!("{e:?}"))?;
    image::RgbaImage::from_raw(out.width, out.height, out.pixels).ok_or("bad output buffer")?.save(output)?;
    println!("{output}: {}x{}", out.width, out.height);
    Ok(())
}

fn parse_step(text: &str) -> Result<Step, Box<dyn std::error::Error>> {
    let (name, rest) = text.split_once(':').unwrap_or((text, ""));
    let info = params::info(name).ok_or_else(|| format!("unknown filter `{name}`"))?;
    let mut params = Vec::new();
    for pair in rest.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
        let spec = info.params.iter().find(|s| s.name == key).ok_or_else(|| format!("`{name}` has no `{key}`"))?;
        let value = match spec.type_ {
            ParamType::Integer(_) => Value::Integer(value.parse()?),
            ParamType::Number(_) => Value::Number(value.parse()?),
            ParamType::Boolean(_) => Value::Boolean(value.parse()?),
            ParamType::Media => Value::Media(Media { mime: "application/octet-stream".into(), bytes: std::fs::read(value)? }),
            ParamType::Text(_) | ParamType::Choice(_) => Value::Text(value.into()),
        };
        params.push(Param { name: key.into(), value });
    }
    Ok(Step { name: name.into(), params })
}
