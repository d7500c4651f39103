//! A strict `multipart/form-data` reader (RFC 7578) for the videos route.

/// One part of a form.
#[derive(Debug, Clone)]
pub struct Part {
    /// The `name` of its Content-Disposition.
    pub name: String,
    /// The `filename`, for file parts.
    pub filename: Option<String>,
    /// Its own Content-Type, when given.
    pub content_type: Option<String>,
    /// The raw bytes.
    pub data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A quoted or bare parameter of a Content-Disposition header.
fn disposition_param(header: &str, key: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&format!("{key}=")) {
        let at = from + pos;
        let before_ok = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b';');
        let rest = &header[at + key.len() + 1..];
        if before_ok {
            if let Some(q) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => return Some(out),
                        c => out.push(c),
                    }
                }
                return None;
            }
            return Some(rest.split(';').next().unwrap_or("").trim().to_string());
        }
        from = at + 1;
    }
    None
}

/// Split a body into parts, or say what is malformed.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0).ok_or("the body does not contain the boundary")?;
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body.get(pos..pos + 2) == Some(b"--") {
            return Ok(parts);
        }
        if body.get(pos..pos + 2) != Some(b"\r\n") {
            return Err("a boundary line must end with CRLF".into());
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("a part has no blank line after its headers")?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').ok_or_else(|| format!("malformed part header `{line}`"))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    if !v.trim().to_ascii_lowercase().starts_with("form-data") {
                        return Err(format!("Content-Disposition must be form-data, got `{}`", v.trim()));
                    }
                    name = disposition_param(v, "name");
                    filename = disposition_param(v, "filename");
                }
                "content-type" => content_type = Some(v.trim().to_string()),
                _ => {}
            }
        }
        let name = name.ok_or("a part has no Content-Disposition name")?;
        let data_start = head_end + 4;
        let end_marker = format!("\r\n{delim}");
        let data_end = find(body, end_marker.as_bytes(), data_start).ok_or("the body ends before the closing boundary")?;
        parts.push(Part { name, filename, content_type, data: body[data_start..data_end].to_vec() });
        pos = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_file_parts() {
        let body = b"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsora-2\r\n--xyz\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"a \\\"b\\\".png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--xyz--\r\n";
        assert_eq!(boundary("multipart/form-data; boundary=\"xyz\"").as_deref(), Some("xyz"));
        let parts = parse(body, "xyz").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].data.as_slice()), ("model", b"sora-2".as_slice()));
        assert_eq!(parts[1].filename.as_deref(), Some("a \"b\".png"));
        assert_eq!(parts[1].data, b"\x89PNG");
        assert!(parse(b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end", "xyz").is_err());
        assert!(boundary("application/json").is_none());
    }
}
