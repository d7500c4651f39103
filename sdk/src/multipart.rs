//! `multipart/form-data` bodies (RFC 7578), e.g. for OpenAI's `/v1/videos`.

/// A form under construction.
pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Form {
    /// An empty form. The boundary is derived from `seed` so bodies are reproducible.
    pub fn new(seed: u64) -> Self {
        Form { boundary: format!("atelier-boundary-{seed:016x}"), body: Vec::new() }
    }

    /// Add a text field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.head(name, None, None);
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// Add a file field.
    pub fn file(mut self, name: &str, filename: &str, mime: &str, bytes: &[u8]) -> Self {
        self.head(name, Some(filename), Some(mime));
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    fn head(&mut self, name: &str, filename: Option<&str>, mime: Option<&str>) {
        let mut h = format!("--{}\r\nContent-Disposition: form-data; name=\"{}\"", self.boundary, escape(name));
        if let Some(f) = filename {
            h.push_str(&format!("; filename=\"{}\"", escape(f)));
        }
        h.push_str("\r\n");
        if let Some(m) = mime {
            h.push_str(&format!("Content-Type: {m}\r\n"));
        }
        h.push_str("\r\n");
        self.body.extend_from_slice(h.as_bytes());
    }

    /// The `Content-Type` header value and the finished body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (format!("multipart/form-data; boundary={}", self.boundary), self.body)
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_form_with_text_and_file() {
        let (ct, body) = Form::new(7).text("model", "sora-2").file("input_reference", "a.png", "image/png", b"PNG").finish();
        assert_eq!(ct, "multipart/form-data; boundary=atelier-boundary-0000000000000007");
        let s = String::from_utf8(body).unwrap();
        assert!(s.contains("name=\"model\"\r\n\r\nsora-2\r\n"));
        assert!(s.contains("filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n"));
        assert!(s.ends_with("--atelier-boundary-0000000000000007--\r\n"));
    }
}
